"""Tests of the pure kernels of `lightning_stability.dynamics` (no Trainer)."""
