"""lightning-stability: is the accuracy you have reached stable under further loss decrease?"""

from . import theory

__all__ = ["theory"]
__version__ = "0.1.0"
