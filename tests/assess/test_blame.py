"""lightning_stability.assess.blame: the Condition B witness samples and the blame sets of a check, on hand-made margins."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_stability import theory
from lightning_stability.assess.blame import blame_sets, witness_samples
from lightning_stability.records import BlameSets, MarginPass

# sample indices of the pass (not positions): the witness must come back as these
INDICES = torch.tensor([3, 5, 7, 9, 11, 13, 15, 17])


def margin_pass(margins: list[float]) -> MarginPass:
    values = torch.tensor(margins, dtype=torch.float64)
    n = values.numel()
    return MarginPass(
        indices=INDICES[:n],
        targets=torch.zeros(n, dtype=torch.long),
        margins=values,
        losses=torch.nn.functional.softplus(-values),
        predicted=torch.zeros(n, dtype=torch.long),
        num_classes=2,
    )


def report_with(margins: MarginPass, **theorem_b: float) -> theory.StabilityReport:
    """A report of the pass whose Theorem B candidate has the parameters ``theorem_b`` (only those are read)."""
    b = dict(floor=0.5, eta=0.0, eta0=1.0, zeta=0.5, dilation=2.0, max_mass=0.5, min_cluster_mass=0.0)
    b.update(min_width=0.1, kappa_lower=1.0, kappa_upper=1.0, envelope_bound=0.3)
    a = theory.TheoremAFloor(0.5, 0.0, 1.0, 0.5, 1.0, 1.0, 1.0, 0.3)
    n = margins.margins.numel()
    return theory.StabilityReport(
        n, 2, 0.5, None, 0.1, 0.4, 0.5, 0.5, 0.0, (0.0,), (0.5,), (0.0,), a, theory.TheoremBFloor(**{**b, **theorem_b})
    )


# Λ = 2, m = 1/2, h = 0.1, window end w = 1: every admissible interval ([c ± r], r ≥ 0.05, c + 2r ≤ 1) holds
# only the values ≤ 1, and its dilation holds nothing more (the next value is 10), so κ_B = 1 and the witness
# interval holds exactly the values near 0
ISOLATED = dict(dilation=2.0, max_mass=0.5, min_cluster_mass=0.0, min_width=0.1, eta0=1.0, kappa_upper=1.0)
GRID = theory.CertificateGrid()


@pytest.mark.parametrize("spacing", [1 / 8, None])
def test_witness_is_the_isolated_sample_as_a_sample_index(spacing: float | None) -> None:
    margins = margin_pass([0.0, 10.0, 10.1, 10.2, 20.0, 20.1, 20.2, 20.3])
    grid = theory.CertificateGrid(centre_spacing_fraction=spacing)
    witness = witness_samples(margins, report_with(margins, **ISOLATED), None, grid)
    assert witness.dtype == torch.long
    assert witness.tolist() == [3]  # position 0 holds sample 3


def test_witness_holds_only_the_positive_weight_samples() -> None:
    # 0 and 0.01 are 0.01 apart: an interval of radius ≥ 0.05 holding one of them dilates onto the other (ratio 2),
    # one holding both dilates onto nothing more (ratio 1): the witness holds both
    margins = margin_pass([0.0, 0.01, 10.0, 10.1, 10.2, 20.0, 20.1, 20.2])
    report = report_with(margins, **ISOLATED)
    assert witness_samples(margins, report, None, GRID).tolist() == [3, 5]
    weights = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    assert witness_samples(margins, report, weights, GRID).tolist() == [3]


def test_witness_caps_the_cluster_mass_at_the_mass_cap() -> None:
    # m_min = 0.9 > m = 0.5 would be refused by condition_b_constant; it is capped at m: the four samples at 0
    # (mass 1/2, their dilation holds nothing more) are the witness
    margins = margin_pass([0.0, 0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 10.0])
    report = report_with(margins, **{**ISOLATED, "min_cluster_mass": 0.9})
    assert witness_samples(margins, report, None, GRID).tolist() == [3, 5, 7, 9]


@pytest.mark.parametrize(
    "no_interval", [{"max_mass": 0.0}, {"kappa_upper": math.inf}, {"min_width": 0.0}], ids=lambda d: next(iter(d))
)
def test_no_admissible_interval_gives_no_witness(no_interval: dict[str, float]) -> None:
    margins = margin_pass([0.0, 10.0, 10.1, 10.2, 20.0, 20.1, 20.2, 20.3])
    witness = witness_samples(margins, report_with(margins, **{**ISOLATED, **no_interval}), None, GRID)
    assert witness.dtype == torch.long and witness.shape == (0,)


def test_blame_sets_of_a_check() -> None:
    # margins by position: sample 3: 0.0, 5: 10.0, 7: 10.0, 9: 10.2, ... -> the 3 worst: 3, then the tie 5, 7 in order
    margins = margin_pass([0.0, 10.0, 10.0, 10.2, 20.0, 20.1, 20.2, 20.3])
    report = report_with(margins, **ISOLATED)
    forgotten = torch.tensor([9, 15])
    sets = blame_sets(margins, report, None, GRID, forgotten, 3, data_cluster=None)
    assert isinstance(sets, BlameSets)
    assert sets.forgotten.tolist() == [9, 15]
    assert sets.worst.tolist() == [3, 5, 7]
    assert sets.witness.tolist() == [3]
    assert sets.data_cluster.dtype == torch.long and sets.data_cluster.shape == (0,)

    cluster = blame_sets(
        margins, report, None, GRID, forgotten, 0, data_cluster=torch.tensor([4, 2], dtype=torch.int32)
    )
    assert cluster.data_cluster.dtype == torch.long and cluster.data_cluster.tolist() == [4, 2]
    assert cluster.worst.shape == (0,)
