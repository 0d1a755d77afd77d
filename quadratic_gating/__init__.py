"""Quadratic Gating Functions in Mixture of Experts: A Statistical Insight (Akbarian et al.)."""
