"""Training-dynamics math without Lightning: Hessian λ_max, degenerate parametrizations, gradient flow."""

from .gradients import depth_layers, first_last_ratio, layer_norms
from .hessian import (
    EigenEstimate,
    HessianVectorProduct,
    lanczos_top_eigenvalue,
    power_iteration,
    top_hessian_eigenvalue,
)
from .parametrization import (
    ActivationKind,
    HiddenLayer,
    ParametrizationStats,
    activation_kind,
    dead_units,
    find_hidden_layers,
    parametrization_statistics,
)

__all__ = [
    "ActivationKind",
    "EigenEstimate",
    "HessianVectorProduct",
    "HiddenLayer",
    "ParametrizationStats",
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
]
