"""The functional core: pure tensor functions for every quantity of docs/theory.md §1–§8.

Nothing here knows about Lightning. All results are float64; weights default to uniform ``1/N``.
"""

from .certificate import CertificateGrid, certify
from .clusters import data_clusters
from .condition_a import condition_a_constant, condition_a_envelope
from .condition_b import condition_b_constant, condition_b_envelope
from .distribution import (
    SortedMargins,
    accuracy,
    bad_mass,
    good_mass,
    margin_cdf,
    margins,
    margins_and_cross_entropy,
    per_sample_cross_entropy,
)
from .envelope import envelope_loss_bound
from .estimates import clopper_pearson_lower, dkw_epsilon, draw_subset, quantile_band, subset_estimate
from .floors import theorem_a_floor, theorem_b_floor
from .loss import (
    binary_margin_loss,
    loss_bounds,
    loss_floor,
    multiclass_margin_loss,
)
from .monitoring import flip_masses, instability_event, loss_rose
from .results import (
    ConditionBResult,
    DataClusterReport,
    StabilityReport,
    SubsetEstimate,
    TheoremAFloor,
    TheoremBFloor,
)

__all__ = [
    "CertificateGrid",
    "ConditionBResult",
    "DataClusterReport",
    "SortedMargins",
    "StabilityReport",
    "SubsetEstimate",
    "TheoremAFloor",
    "TheoremBFloor",
    "accuracy",
    "bad_mass",
    "binary_margin_loss",
    "certify",
    "clopper_pearson_lower",
    "condition_a_constant",
    "condition_a_envelope",
    "condition_b_constant",
    "condition_b_envelope",
    "data_clusters",
    "dkw_epsilon",
    "draw_subset",
    "envelope_loss_bound",
    "flip_masses",
    "good_mass",
    "instability_event",
    "loss_bounds",
    "loss_floor",
    "loss_rose",
    "margin_cdf",
    "margins",
    "margins_and_cross_entropy",
    "multiclass_margin_loss",
    "per_sample_cross_entropy",
    "quantile_band",
    "subset_estimate",
    "theorem_a_floor",
    "theorem_b_floor",
]
