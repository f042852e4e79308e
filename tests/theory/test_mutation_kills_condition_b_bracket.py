"""``κ_lo`` and ``κ_hi`` of `condition_b_constant` against their definitions, in exact arithmetic (issue 16).

The older tests check that the bracket *contains* the exact ``κ_B``; the mutation run showed that a bracket
which is looser, or built on a different radius grid or centre set, still passes them. The docstring of
`condition_b_constant` defines both ends precisely, and `bracket_oracle` below recomputes them from that text
with Fractions (no code shared with the package):

* radii ``r_i = (h/2) q^i``, ``i = 0..R``, ``R`` the least integer ``≥ 1`` with ``r_R ≥`` the top radius
  ``min(max(h/2, span/(Λ−1), span/2), (w − min)/(Λ−1))`` of the window's values;
* ``κ_hi = min_i min_c μ([c ± Λr_i]) / μ([c ± r_i])`` over admissible centres (``c + Λr_i ≤ w``,
  ``μ(ΛI) ≤ m``, ``μ(I) ≥ m_min``, ``μ(I) > 0``);
* ``κ_lo = min_i min_c μ([c ± Λr_i]) / μ([c ± r_{i+1}])`` over the same centres (``c + Λr_i ≤ w``), together with
  the tail bound ``M_w / μ(δ ≤ w − (Λ−1) r_R)`` when ``r_R < (w − min)/(Λ−1)`` and ``M_w ≤ m``, then
  ``max(1, κ_lo (1 − 1e-12))`` and at most ``κ_hi``;
* with ``centre_spacing = b`` the centres run over ``bℤ`` and ``κ_lo`` uses ``[c ± (Λr_i − b/2)]`` over
  ``[c ± (r_{i+1} + b/2)]`` with ``c ≤ w − Λr_i + b/2``.

Values, ``h``, ``b``, ``Λ`` and ``q`` (3/2, or 5/4 when ``Λ = 3/2``) are dyadic, so every interval end the package computes is exact; only
the masses ``k/N`` are rounded, so the two computations must agree to 1e-14 relative.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from lightning_stability import theory

OUTWARD = Fraction(1) - Fraction(1, 10**12)


def masses(values, low, high):
    """μ([low, high]) of the uniform measure on ``values`` (Fractions)."""
    return Fraction(sum(1 for v in values if low <= v <= high), len(values))


def candidate_centres(values, radii, cap, spacing):
    """Every centre where a mass can change (± each radius, the cap), midpoints and one beyond each end;
    or, with a spacing ``b``, every multiple of ``b`` from below the values to above them."""
    if spacing is not None:
        low = min(values) - max(radii) - 2 * spacing
        high = max(values) + max(radii) + 2 * spacing
        k = math.floor(low / spacing)
        out = []
        while k * spacing <= high:
            out.append(k * spacing)
            k += 1
        return out
    points = sorted({v + s * r for v in values for r in radii for s in (-1, 1)} | ({cap} if cap is not None else set()))
    points += [(a + b) / 2 for a, b in zip(points, points[1:])]
    return points + [points[0] - 1, points[-1] + 1]


def least_ratio(values, num_radius, den_radius, cap, max_mass, min_mass, spacing):
    best = math.inf
    for c in candidate_centres(values, [num_radius, den_radius], cap, spacing):
        if cap is not None and c > cap:
            continue
        num = masses(values, c - num_radius, c + num_radius)
        den = masses(values, c - den_radius, c + den_radius)
        if num <= max_mass and den >= min_mass and den > 0:
            best = min(best, num / den)
    return best


def bracket_oracle(values, dilation, max_mass, width, min_mass, window, ratio, spacing=None):
    V = [Fraction(v) for v in values]
    L, m, m_min, q = Fraction(dilation), Fraction(max_mass), Fraction(min_mass), Fraction(ratio)
    W = None if math.isinf(window) else Fraction(window)
    inside = sorted(v for v in V if W is None or v <= W)
    if not inside:
        return math.inf, math.inf
    lowest, highest = inside[0], inside[-1]
    window_mass = Fraction(len(inside), len(V))
    small = Fraction(width) / 2
    largest = None if W is None else (W - lowest) / (L - 1)
    if largest is not None and small > largest:
        return math.inf, math.inf
    span = highest - lowest
    top = max(small, span / (L - 1), span / 2)
    if largest is not None:
        top = min(top, largest)
    radii = [small]
    while len(radii) < 2 or radii[-1] < top:
        radii.append(radii[-1] * q)
    b = None if spacing is None else Fraction(spacing)
    upper = lower = math.inf
    for i, r in enumerate(radii):
        cap = None if W is None else W - L * r
        upper = min(upper, least_ratio(V, L * r, r, cap, m, max(m_min, Fraction(0)), b))
        if i + 1 < len(radii):
            if b is None:
                lower = min(lower, least_ratio(V, L * r, radii[i + 1], cap, m, m_min, None))
            else:
                relaxed = None if cap is None else cap + b / 2
                num = max(L * r - b / 2, Fraction(0))
                lower = min(lower, least_ratio(V, num, radii[i + 1] + b / 2, relaxed, m, m_min, b))
    if (largest is None or radii[-1] < largest) and window_mass <= m:
        reach = masses(V, Fraction(-(10**9)), W - (L - 1) * radii[-1]) if W is not None else Fraction(0)
        if reach > 0 and reach >= m_min:
            lower = min(lower, window_mass / reach)
    if lower != math.inf:
        lower = max(Fraction(1), lower * OUTWARD)
    lower = min(lower, upper)
    return lower, upper, len(radii)


CASES = [
    # values, Λ, m, h, m_min, w
    ([-1.25, -0.375, -0.125, 0.375, 0.625, 1.375, 2.0], 3.0, 0.5, 1.0, 0.125, math.inf),
    ([-0.375, 0.125, 0.25, 0.75, 1.875], 3.0, 1.0, 1.0, 0.375, 1.875),
    ([-1.875, -1.5, -0.25, 0.375, 1.125, 1.25, 1.75], 2.0, 1.0, 0.5, 0.375, 0.375),
    ([-1.25, -0.5, 0.0, 0.0, 2.0], 3.0, 0.5, 0.5, 0.0, 2.0),
    ([-0.375, -0.125, 0.625], 1.5, 1.0, 1.0, 0.25, -0.125),
    ([-2.0, 0.0, 0.125, 0.25], 2.0, 1.0, 0.25, 0.25, math.inf),
    ([-2.0, -1.875, 1.0, 1.375, 1.5], 3.0, 1.0, 1.0, 0.0, 1.0),
    ([-0.25, -0.25, -0.25, 0.75, 1.625], 1.5, 0.5, 1.0, 0.0, 1.625),
    ([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75], 2.0, 0.5, 0.5, 0.125, 1.0),
    ([0.0, 0.5], 2.0, 1.0, 1.0, 0.0, 0.5),  # smallest radius h/2 = (w − min)/(Λ − 1): exactly one radius fits
    ([0.75, 0.75, 0.75], 2.0, 1.0, 0.5, 0.0, math.inf),  # span 0: the grid still has R = 1
    # the tail bound M_w / μ(δ ≤ w − (Λ−1) r_R) decides κ_lo (q = 5/4 below)
    ([-1.0, 0.0, 0.25, 1.25], 3.0, 0.75, 1.0, 0.375, 1.0),
    ([-0.875, 0.5, 0.875, 1.25], 3.0, 0.75, 0.5, 0.375, 1.125),
    ([-1.5, -1.0, -0.75, -0.5, -0.375, 0.125, 1.25, 1.25], 3.0, 0.625, 0.75, 0.25, -0.25),
    # one value in the window (its mass, not the total, is M_w), and Λ > 3 (span/2 > span/(Λ − 1) sets the top radius)
    ([0.5, 0.875, 1.25, 2.0], 3.0, 0.75, 1.0, 0.375, math.inf),
    ([-0.875, -0.625, -0.375, 0.25], 3.0, 0.5, 0.5, 0.375, 0.125),
    ([-0.25, -0.25, 0.75, 1.875], 4.0, 0.5, 0.5, 0.0, 1.0),
    ([-2.0, -1.75, -1.0, -0.75, -0.375, 0.0, 1.625, 2.0], 4.0, 1.0, 0.25, 0.375, math.inf),
    ([-1.75, 0.25], 6.0, 0.75, 0.25, 0.0, math.inf),
    # the tail bound applies and is the least: κ_lo = M_w / μ(δ ≤ w − (Λ−1) r_R) = (3/4)/(1/2) (q = 5/4)
    ([-2.0, -1.25, -0.75, 1.375], 6.0, 0.75, 1.0, 0.125, 1.25),
    ([0.25, 0.875, 1.75, 2.0, 2.0, 2.5, 2.875, 3.0], 4.0, 1.0, 0.75, 0.25, 5.0),
    (
        [0.0, 0.0, 0.25, 0.625, 1.125, 1.5, 1.625, 1.75, 1.875, 2.25, 3.5, 4.0, 4.625, 4.75, 5.0, 5.375],
        3.0,
        1.0,
        0.25,
        0.375,
        5.875,
    ),
]
TAIL_CASES = {11, 12, 13, 19, 20, 21}


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("spacing_fraction", [None, 0.25])
def test_bracket_matches_its_definition(case, spacing_fraction):
    values, dilation, cap, width, cluster, window = CASES[case]
    ratio = 1.25 if dilation <= 1.5 or case in TAIL_CASES else 1.5  # q < Λ, dyadic
    spacing = None if spacing_fraction is None else spacing_fraction * width
    result = theory.condition_b_constant(
        torch.tensor(values, dtype=torch.float64),
        dilation,
        cap,
        width,
        min_cluster_mass=cluster,
        window_end=window,
        radius_ratio=ratio,
        centre_spacing=spacing,
    )
    expected = bracket_oracle(values, dilation, cap, width, cluster, window, ratio, spacing)
    lower, upper = expected[0], expected[1]
    assert result.upper == (math.inf if upper == math.inf else pytest.approx(float(upper), rel=1e-14))
    assert result.lower == (math.inf if lower == math.inf else pytest.approx(float(lower), rel=1e-14))
    if len(expected) == 3:
        assert result.num_radii == expected[2]
    else:
        assert result.num_radii == 0 and result.witness is None


def test_one_radius_when_h_over_2_is_the_largest_admissible_radius():
    # (w − min)/(Λ − 1) = 0.5 = h/2: I = [−1, 0], ΛI = [−1.5, 0.5] holds both values: κ_B = 2
    result = theory.condition_b_constant(torch.tensor([0.0, 0.5]), 2.0, 1.0, 1.0, window_end=0.5)
    assert (result.lower, result.upper, result.witness) == (1.0, 2.0, (-0.5, 0.5))
