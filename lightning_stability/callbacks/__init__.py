"""Lightning callbacks: thin layers that collect, call :mod:`lightning_stability.theory`, log and stop."""

from .stability_monitor import StabilityMonitor

__all__ = ["StabilityMonitor"]
