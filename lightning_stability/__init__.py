"""lightning-stability: is the accuracy you have reached stable under further loss decrease?

The callbacks (`StabilityMonitor` and the training-dynamics monitors) are the entry points; the pure
tensor mathematics lives in `lightning_stability.theory` and `lightning_stability.dynamics`.
"""

from importlib.metadata import PackageNotFoundError, version

from . import dynamics, theory
from .activations import AbsoluteValue
from .callbacks import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor, StabilityMonitor

try:
    __version__ = version("lightning-stability")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AbsoluteValue",
    "GradientFlowMonitor",
    "ParametrizationMonitor",
    "SharpnessMonitor",
    "StabilityMonitor",
    "__version__",
    "dynamics",
    "theory",
]
