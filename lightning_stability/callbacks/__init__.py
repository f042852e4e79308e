"""Lightning callbacks: thin layers that collect, call :mod:`lightning_stability.theory` or
:mod:`lightning_stability.dynamics`, log and stop."""

from .gradient_flow import GradientFlowMonitor
from .parametrization import ParametrizationMonitor
from .sharpness import SharpnessMonitor
from .stability_monitor import StabilityMonitor

__all__ = ["GradientFlowMonitor", "ParametrizationMonitor", "SharpnessMonitor", "StabilityMonitor"]
