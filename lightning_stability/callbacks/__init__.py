"""Lightning callbacks: thin layers on one shared base (`base`) that collect samples, call the pure kernels of
`lightning_stability.theory` or `lightning_stability.dynamics`, log and decide to stop.

* `StabilityMonitor` (kernels: `theory`): is the accuracy reached stable? (docs/theory.md)
* `SharpnessMonitor` (kernels: `dynamics.sharpness`): is the step size below `2 / λ_max`? (docs/dynamics.md D1)
* `ParametrizationMonitor` (kernels: `dynamics.parametrization`): dead, unbalanced or redundant units? (D2)
* `GradientFlowMonitor` (kernels: `dynamics.gradient_flow`): vanishing or exploding gradients? (D3)
"""

from .gradient_flow import GradientFlowMonitor
from .parametrization import ParametrizationMonitor
from .sharpness import SharpnessMonitor
from .stability import StabilityMonitor

__all__ = ["GradientFlowMonitor", "ParametrizationMonitor", "SharpnessMonitor", "StabilityMonitor"]
