"""lightning-stability: is the accuracy you have reached stable under further loss decrease?"""

from . import dynamics, theory
from .callbacks import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor, StabilityMonitor

__all__ = [
    "GradientFlowMonitor",
    "ParametrizationMonitor",
    "SharpnessMonitor",
    "StabilityMonitor",
    "dynamics",
    "theory",
]
__version__ = "0.1.0"
