"""The samples a check blames (docs/samples.md), picked from the margin pass and the report: pure functions.

The blame sets of a check are the samples forgotten since their previous check, the ``blame_size`` worst margins,
the samples of the Condition B witness interval (docs/theory.md §6) and the isolated input cluster of the data
check (§9), as sample indices (`lightning_stability.records.BlameSets`). Only ``worst`` is cut here, to its
``blame_size`` smallest margins; the other sets are whole, and the grid and the margin file's cells show the
``blame_size`` smallest margins of each (`lightning_stability.dynamics.samples.smallest_margins_first`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import theory
from ..dynamics.samples import worst_margin_samples
from ..records import BlameSets, MarginPass

__all__ = ["blame_sets", "witness_samples"]


def witness_samples(
    margin_pass: MarginPass, report: theory.StabilityReport, weights: Tensor | None, grid: theory.CertificateGrid
) -> Tensor:
    """The sample indices inside the Condition B witness interval (docs/theory.md §6) of the report's best Theorem
    B candidate, recomputed with its window, cap, resolution and cluster mass on the certify grid ``grid``; empty
    when no interval is admissible."""
    b = report.theorem_b
    if not (b.max_mass > 0 and math.isfinite(b.kappa_upper) and b.min_width > 0):
        return torch.zeros(0, dtype=torch.long)
    spacing = None if grid.centre_spacing_fraction is None else grid.centre_spacing_fraction * b.min_width
    bracket = theory.condition_b_constant(
        margin_pass.margins,
        b.dilation,
        max_mass=b.max_mass,
        min_width=b.min_width,
        min_cluster_mass=min(b.min_cluster_mass, b.max_mass),
        window_end=b.eta0,
        weights=weights,
        radius_ratio=grid.radius_ratio,
        centre_spacing=spacing,
    )
    return margin_pass.indices[bracket.witness_indices.cpu()]


def blame_sets(
    margin_pass: MarginPass,
    report: theory.StabilityReport,
    weights: Tensor | None,
    grid: theory.CertificateGrid,
    forgotten: Tensor,
    blame_size: int,
    data_cluster: Tensor | None,
) -> BlameSets:
    """The blame sets of one check (``forgotten``: the samples the per-sample statistics found forgotten;
    ``data_cluster``: the data check's witness indices, if one ran)."""
    return BlameSets(
        forgotten=forgotten,
        worst=worst_margin_samples(margin_pass.indices, margin_pass.margins, blame_size),
        witness=witness_samples(margin_pass, report, weights, grid),
        data_cluster=torch.zeros(0, dtype=torch.long) if data_cluster is None else data_cluster.long().cpu(),
    )
