"""Condition B brackets on small sets where the optimum is a closed-boundary configuration (issue 16).

The exact-breakpoint centres of `condition_b_constant` (``centre_spacing=None``) must include the last
admissible centre ``c = w − Λr`` and the midpoint of *every* pair of consecutive breakpoints; the mutation run
found both unpinned (the older brute-force tests pass with either dropped). On the sets below the least ratio
is attained at the grid radius ``h/2`` by a single centre (the exact oracle's witness has that radius and the
package's witness is the same interval), so ``κ_hi`` must equal the exact ``κ_B`` of
`tests.theory.oracles.brute_kappa`, and ``κ_lo ≤ κ_B`` must hold. All values are dyadic, hence exact in float64.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from lightning_stability import theory
from tests.theory.oracles import brute_kappa

CASES = [
    # values, Λ, h, m, m_min, w, q, exact κ_B, witness (c, r) of the exact oracle
    ([-0.625, 0.375], 3.0, 1.0, 1.0, 0.2, 0.375, 1.2, 2.0, (-1.125, 0.5)),  # c = w − Λr, the last centre
    ([-0.625, -0.5, -0.375, 1.625], 1.5, 0.5, 1.0, 0.2, -0.375, 1.2, 1.5, (-0.75, 0.25)),
    ([-2.0, -1.75, -1.75, -1.25, 0.125, 0.875, 1.5], 3.0, 0.75, 0.5, 0.0, 1.5, 1.4, 2.0, (0.125, 0.375)),
    ([-1.25, -0.5, -0.25, 0.625, 1.625], 1.5, 1.0, 0.5, 0.3, 1.0, 1.2, 1.0, (-0.3125, 0.5)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_exact_centres_find_the_boundary_optimum(case):
    values, dilation, width, cap, cluster, window, ratio, kappa, witness = CASES[case]
    margins = torch.tensor(values, dtype=torch.float64)
    exact, best = brute_kappa(margins, dilation, cap, width, cluster, window_end=window)
    assert exact == kappa and best[1] == Fraction(width) / 2  # the oracle's optimum has radius h/2
    bracket = theory.condition_b_constant(
        margins, dilation, cap, width, min_cluster_mass=cluster, window_end=window, radius_ratio=ratio
    )
    assert bracket.lower <= kappa
    assert bracket.upper == pytest.approx(kappa, rel=1e-12)
    assert bracket.witness[1] == width / 2
    assert bracket.witness[0] == pytest.approx(witness[0], abs=1e-12)


def test_dropping_a_value_beyond_the_window_changes_nothing():
    # the exact case 0 again with a value above w: it never lies in an admissible ΛI, only its weight counts
    margins = torch.tensor([-0.625, 0.375, 5.0], dtype=torch.float64)
    bracket = theory.condition_b_constant(
        margins, 3.0, 1.0, 1.0, min_cluster_mass=0.2, window_end=0.375, radius_ratio=1.2
    )
    exact, _ = brute_kappa(margins, 3.0, 1.0, 1.0, 0.2, window_end=0.375)
    assert exact == 2.0 and bracket.lower <= 2.0 and bracket.upper == pytest.approx(2.0, rel=1e-12)


def test_result_reports_the_settings_it_was_given():
    values = torch.tensor([-0.625, 0.375], dtype=torch.float64)
    settings = dict(min_cluster_mass=0.25, window_end=0.375, radius_ratio=1.25, centre_spacing=0.125)
    result = theory.condition_b_constant(values, 3.0, 0.75, 0.5, **settings)
    assert (result.dilation, result.max_mass, result.min_width) == (3.0, 0.75, 0.5)
    assert (result.min_cluster_mass, result.window_end, result.radius_ratio, result.centre_spacing) == (
        0.25,
        0.375,
        1.25,
        0.125,
    )
    assert result.num_radii >= 2


@pytest.mark.parametrize(
    "window_end,width",
    [
        (-1.0, 0.5),  # no value in the window
        (0.375, 4.0),  # h/2 = 2 > (w − min)/(Λ − 1) = 0.5: no radius fits
    ],
)
def test_no_admissible_interval(window_end, width):
    values = torch.tensor([-0.625, 0.375, 2.0], dtype=torch.float64)
    result = theory.condition_b_constant(
        values, 3.0, 0.75, width, min_cluster_mass=0.25, window_end=window_end, centre_spacing=width / 4
    )
    assert (result.lower, result.upper, result.witness, result.num_radii) == (math.inf, math.inf, None, 0)
    assert result.witness_indices.dtype == torch.long and result.witness_indices.shape == (0,)
    assert (result.dilation, result.max_mass, result.min_width, result.min_cluster_mass) == (3.0, 0.75, width, 0.25)
    assert (result.window_end, result.radius_ratio, result.centre_spacing) == (window_end, 1.05, width / 4)
    assert result.certified  # vacuously: no admissible interval, Condition B holds with any κ


def test_radius_grid_reaches_the_top_radius_despite_rounding():
    # top radius = span/(Λ − 1) = t, chosen one ulp above (h/2) 1.05^18: the step count
    # ceil(log(t / (h/2)) / log 1.05) rounds to 18, but (h/2) 1.05^18 < t, so a 20th radius is needed
    t = math.nextafter(0.5 * 1.05**18, math.inf)
    assert math.ceil(math.log(t / 0.5) / math.log(1.05)) == 18 and 0.5 * 1.05**18 < t
    result = theory.condition_b_constant(torch.tensor([0.0, t], dtype=torch.float64), 2.0, 1.0, 1.0)
    assert result.num_radii == 20
    exact, _ = brute_kappa(torch.tensor([0.0, t], dtype=torch.float64), 2.0, 1.0, 1.0)
    assert result.lower <= exact <= result.upper


def test_envelope_exponent_is_corrected_when_the_logarithm_rounds_up():
    # D one ulp below Λ³ · h/2 = 8: J = floor(log_2(D / 1)) is 2 (2³ > D), but the float quotient
    # log(D)/log(2) rounds to 3; U_B(λ ≤ h/2) = ζ κ^{−J} = (1/2) 2^{−2}
    span = math.nextafter(8.0, 0.0)
    assert math.floor(math.log(span) / math.log(2.0)) == 3 and 2.0**3 > span
    envelope = theory.condition_b_envelope(2.0, 2.0, 0.5, 0.0, 2.0, span)
    assert envelope(torch.tensor([0.5, 1.0], dtype=torch.float64)).tolist() == [0.125, 0.125]
    exact_j = max(j for j in range(10) if Fraction(2) ** j <= Fraction(span))
    assert exact_j == 2


def test_no_witness_when_radii_exist_but_no_interval_is_admissible():
    # radii h/2 q^i exist for the window (−inf, 0], but no interval of the exact oracle is admissible:
    # κ_hi = inf and the witness is empty
    margins = torch.tensor([-1.5, -1.125, 0.0], dtype=torch.float64)
    result = theory.condition_b_constant(margins, 2.0, 0.5, 0.75, min_cluster_mass=0.125, window_end=0.0)
    exact, _ = brute_kappa(margins, 2.0, 0.5, 0.75, 0.125, window_end=0.0)
    assert exact == math.inf
    assert result.upper == math.inf and result.num_radii > 0
    assert result.witness is None
    assert result.witness_indices.dtype == torch.long and result.witness_indices.numel() == 0


def test_witness_indices_are_the_positive_weight_values_inside_the_witness():
    margins = torch.tensor([3.0, -2.0, 0.125, 0.0, 0.25], dtype=torch.float64)
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    result = theory.condition_b_constant(margins, 2.0, 0.5, 0.25, min_cluster_mass=0.25, weights=weights)
    centre, radius = result.witness
    inside = [k for k, v in enumerate(margins.tolist()) if centre - radius <= v <= centre + radius and weights[k] > 0]
    assert result.witness_indices.tolist() == inside and inside
    assert result.upper == 1.0  # an isolated value: ΛI holds nothing else
