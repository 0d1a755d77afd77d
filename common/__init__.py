"""Shared, paper-agnostic code: configs, run records, plotting, and the layers the papers share."""
