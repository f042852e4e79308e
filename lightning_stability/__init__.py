"""lightning-stability: is the accuracy you have reached stable under further loss decrease?

The callbacks (`StabilityMonitor` and the training-dynamics monitors) are the entry points; the pure
tensor mathematics lives in `lightning_stability.theory` and `lightning_stability.dynamics`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Imported on first use (PEP 562), so that `import lightning_stability.cli` (`lightning-stability --help`, the
# `report`, `samples` and `check-data` commands) does not import torch and Lightning: where each name lives.
_LAZY = {
    "AbsoluteValue": ".activations",
    "GradientFlowMonitor": ".callbacks",
    "ParametrizationMonitor": ".callbacks",
    "SharpnessMonitor": ".callbacks",
    "StabilityMonitor": ".callbacks",
    "dynamics": ".dynamics",
    "theory": ".theory",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name], __name__)
    value = module if module.__name__ == f"{__name__}.{name}" else getattr(module, name)
    globals()[name] = value  # later lookups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
