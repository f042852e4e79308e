"""lightning-stability: is the accuracy you have reached stable under further loss decrease?"""

from . import theory
from .callbacks import StabilityMonitor

__all__ = ["StabilityMonitor", "theory"]
__version__ = "0.1.0"
