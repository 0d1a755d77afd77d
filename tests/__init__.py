"""Tests of the shared code and the papers' packages; CPU-only unless marked `gpu`."""
