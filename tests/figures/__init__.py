"""Tests of `lightning_stability.figures` (the matplotlib figures), one file per module."""
