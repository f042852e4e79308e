"""Integration tests of the StabilityMonitor callback with a real Trainer."""
