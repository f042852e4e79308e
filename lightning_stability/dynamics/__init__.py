"""Training-dynamics kernels without Lightning (docs/dynamics.md), one module per monitor.

* `sharpness` — ``λ_max`` of the loss Hessian from Hessian-vector products (D1, ``SharpnessMonitor``);
* `parametrization` — dead, unbalanced, redundant and disconnected hidden units (D2,
  ``ParametrizationMonitor``);
* `gradient_flow` — per-layer gradient norms and the first/last ratio (D3, ``GradientFlowMonitor``);
* `samples` — per-sample statistics over the margin passes and blame sets (``StabilityMonitor``, docs/samples.md);
* `results` — their result dataclasses.
"""

from .gradient_flow import depth_layers, first_last_ratio, layer_norms
from .parametrization import (
    ActivationKind,
    HiddenLayer,
    activation_kind,
    dead_units,
    find_hidden_layers,
    parametrization_statistics,
)
from .results import EigenEstimate, ParametrizationStats
from .samples import SAMPLE_COLUMNS, SampleDynamics, SampleStatistics, worst_margin_samples
from .sharpness import (
    HessianVectorProduct,
    lanczos_top_eigenvalue,
    power_iteration,
    top_hessian_eigenvalue,
)

__all__ = [
    "SAMPLE_COLUMNS",
    "ActivationKind",
    "EigenEstimate",
    "HessianVectorProduct",
    "HiddenLayer",
    "ParametrizationStats",
    "SampleDynamics",
    "SampleStatistics",
    "activation_kind",
    "dead_units",
    "depth_layers",
    "find_hidden_layers",
    "first_last_ratio",
    "lanczos_top_eigenvalue",
    "layer_norms",
    "parametrization_statistics",
    "power_iteration",
    "top_hessian_eigenvalue",
    "worst_margin_samples",
]
