"""Training-dynamics kernels without Lightning (docs/dynamics.md), one module per monitor.

* `sharpness` — ``λ_max`` of the loss Hessian from Hessian-vector products (D1, ``SharpnessMonitor``);
  `optimizer_preconditioner` (an optimizer's ``P⁻¹`` and threshold ``T``), `sharpness_edge` (the edge ratio and
  its verdict), `sharpness_check` (the eigen-solves of one check), `sharpness_trace` (``tr(H)``: Hutchinson,
  Hutch++), `sharpness_groups` (``λ_max`` of each parameter group's Hessian block);
* `parametrization` — dead, unbalanced, redundant and disconnected hidden units (D2,
  ``ParametrizationMonitor``);
* `gradient_flow` — per-layer gradient norms and the first/last ratio (D3, ``GradientFlowMonitor``);
* `samples` — per-sample statistics over the margin passes and blame sets (``StabilityMonitor``, docs/samples.md);
* `results` — their result dataclasses.
"""

from .gradient_flow import depth_layers, first_last_ratio, layer_norms
from .optimizer_preconditioner import OptimizerPreconditioner, UnreadableOptimizer, read_preconditioner
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
    lanczos_top_eigenvalues,
    power_iteration,
    top_hessian_eigenvalue,
)
from .sharpness_check import SharpnessEstimates, estimate_sharpness
from .sharpness_edge import edge_operator, edge_verdict, warm_start
from .sharpness_groups import block_operator, group_positions, group_top_eigenvalues
from .sharpness_trace import TraceEstimate, hutch_plus_plus_trace, hutchinson_trace, trace_estimate

__all__ = [
    "SAMPLE_COLUMNS",
    "ActivationKind",
    "EigenEstimate",
    "HessianVectorProduct",
    "HiddenLayer",
    "OptimizerPreconditioner",
    "ParametrizationStats",
    "SampleDynamics",
    "SampleStatistics",
    "SharpnessEstimates",
    "TraceEstimate",
    "UnreadableOptimizer",
    "activation_kind",
    "block_operator",
    "dead_units",
    "depth_layers",
    "edge_operator",
    "edge_verdict",
    "estimate_sharpness",
    "find_hidden_layers",
    "first_last_ratio",
    "group_positions",
    "group_top_eigenvalues",
    "hutch_plus_plus_trace",
    "hutchinson_trace",
    "lanczos_top_eigenvalue",
    "lanczos_top_eigenvalues",
    "layer_norms",
    "parametrization_statistics",
    "power_iteration",
    "read_preconditioner",
    "top_hessian_eigenvalue",
    "trace_estimate",
    "warm_start",
    "worst_margin_samples",
]
