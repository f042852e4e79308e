"""Callback tests: the monitors (and their shared base) in a real Trainer."""
