"""``κ_lo ≤ κ_B ≤ κ_hi`` of `condition_b_constant` on decimal inputs, where interval ends round (issue 16).

On decimal values, dilations, widths and windows the float ends ``c ± Λr`` of a dilated interval are rounded;
``κ_hi`` used to be the ratio of a candidate interval whose ends were rounded *inward*, so it could miss a
value that the exact interval holds and fall below the exact ``κ_B`` (margins ``[0, 0.6]``, ``Λ = 3``,
``h = w = 0.6``: ``κ_hi = 1``, ``κ_B = 2``, see TESTING.md). Here the exact ``κ_B`` comes from
`oracles.brute_kappa` (exact Fractions of the float inputs), and the reported witness is re-checked with
Fractions: it must be admissible and its exact ratio must be ``κ_hi``.

The sample masses are exact in these tests (``N`` a power of two, or integer weights summing to a power of
two), so that only the positions are rounded. The two private helpers that make the ends exact are checked
against Fractions as well: ``_rounded_ends`` (the inward-rounded ends of ``[c ± Λr]``) and ``_exact_dilations``
(``fl(Λr)``, its error and the largest centre with ``c + Λr ≤ w``), including the cases where an end of the exact
interval lies within one rounding of a float.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from lightning_stability.theory import condition_b as condition_b_module
from tests.theory.oracles import brute_kappa


def exact_witness_check(result, values, weights, dilation, max_mass, min_width, min_mass, window_end):
    """The witness ``(c, r)`` of ``κ_hi``, checked in exact arithmetic on the float inputs."""
    centre, radius = (Fraction(x) for x in result.witness)
    V = [Fraction(v) for v in values]
    raw = [Fraction(1)] * len(V) if weights is None else [Fraction(w) for w in weights]
    mu = [w / sum(raw) for w in raw]
    L = Fraction(dilation)
    inside = [k for k, v in enumerate(V) if centre - radius <= v <= centre + radius]
    den = sum((mu[k] for k in inside), Fraction(0))
    num = sum((m for v, m in zip(V, mu) if centre - L * radius <= v <= centre + L * radius), Fraction(0))
    assert radius >= Fraction(min_width) / 2
    assert math.isinf(window_end) or centre + L * radius <= Fraction(window_end)
    assert den > 0 and den >= Fraction(min_mass) and num <= Fraction(max_mass)
    assert result.upper == float(num / den)  # the masses are exact, the ratio correctly rounded
    assert result.witness_indices.tolist() == [k for k in inside if mu[k] > 0]


@pytest.mark.parametrize("spacing", [None, 0.3, 0.1])
def test_dilated_interval_touching_the_window_end_keeps_the_value_at_the_end(spacing):
    # the only admissible interval is I = [−0.6, 0] (c = −0.3, r = h/2 = 0.3): it holds 0, and ΛI = [−1.2, 0.6]
    # ends exactly at w = 0.6 and holds 0.6, although −0.3 + 3 · 0.3 rounds to 0.5999999999999999 in float64
    values = torch.tensor([0.0, 0.6], dtype=torch.float64)
    kappa, where = brute_kappa(values, 3.0, 1.0, 0.6, 0.0, 0.6)
    assert kappa == 2.0 and where == (Fraction(-0.3), Fraction(0.3))
    result = theory.condition_b_constant(
        values, 3.0, 1.0, 0.6, window_end=0.6, radius_ratio=1.2, centre_spacing=spacing
    )
    assert result.lower <= 2.0 <= result.upper
    if spacing == 0.1:
        # the grid centre −3 · 0.1 = −0.30000000000000004: its I misses 0, no grid interval is admissible
        assert result.upper == math.inf and result.witness is None
    else:
        assert result.upper == 2.0 and result.witness == (-0.3, 0.3)
        exact_witness_check(result, [0.0, 0.6], None, 3.0, 1.0, 0.6, 0.0, 0.6)


def tenths(low, high):
    return st.integers(low, high).map(lambda k: k / 10)


@st.composite
def decimal_cases(draw):
    size = draw(st.sampled_from([1, 2, 4, 8]))
    values = draw(st.lists(tenths(-20, 20), min_size=size, max_size=size))
    weights = None
    if draw(st.booleans()):  # integer weights summing to 16: masses stay exact
        cuts = sorted(draw(st.lists(st.integers(0, 16), min_size=size - 1, max_size=size - 1)))
        weights = [float(b - a) for a, b in zip([0, *cuts], [*cuts, 16])]
        if not any(weights):
            weights = None
    dilation = draw(tenths(12, 35))
    ratio = draw(st.sampled_from([1.05, 1.1, 1.2, 1.3, 1.5]).filter(lambda q: q < dilation))
    min_width = draw(tenths(1, 15))
    window_end = draw(st.one_of(st.just(math.inf), tenths(-10, 30)))
    max_mass = draw(tenths(1, 10))
    min_mass = draw(tenths(0, 10).filter(lambda x: x <= max_mass))
    spacing = draw(st.sampled_from([None, 1.0, 0.3, 0.1]))
    return values, weights, dilation, ratio, min_width, window_end, max_mass, min_mass, spacing


@settings(max_examples=150)
@given(decimal_cases())
def test_bracket_holds_the_exact_kappa_b_on_decimal_inputs(case):
    values, weights, dilation, ratio, min_width, window_end, max_mass, min_mass, spacing = case
    weight_tensor = None if weights is None else torch.tensor(weights, dtype=torch.float64)
    result = theory.condition_b_constant(
        torch.tensor(values, dtype=torch.float64),
        dilation,
        max_mass,
        min_width,
        min_cluster_mass=min_mass,
        window_end=window_end,
        weights=weight_tensor,
        radius_ratio=ratio,
        centre_spacing=None if spacing is None else spacing * min_width,
    )
    kappa, _ = brute_kappa(values, dilation, max_mass, min_width, min_mass, window_end, weight_tensor)
    assert result.lower <= kappa <= result.upper
    if math.isinf(result.upper):
        assert result.witness is None
    else:
        exact_witness_check(result, values, weights, dilation, max_mass, min_width, min_mass, window_end)


def round_down(x: Fraction) -> float:
    """Largest float ``≤ x``."""
    nearest = float(x)
    return math.nextafter(nearest, -math.inf) if Fraction(nearest) > x else nearest


def round_up(x: Fraction) -> float:
    """Smallest float ``≥ x``."""
    nearest = float(x)
    return math.nextafter(nearest, math.inf) if Fraction(nearest) < x else nearest


def check_ends(centre: float, dilation: float, radius: float) -> None:
    scaled = dilation * radius
    exact = Fraction(dilation) * Fraction(radius)
    error = float(exact - Fraction(scaled))
    assert Fraction(scaled) + Fraction(error) == exact  # the product's rounding error is a float
    low, high = condition_b_module._rounded_ends(
        *(torch.tensor([[x]], dtype=torch.float64) for x in (centre, scaled, error))
    )
    assert float(high) == round_down(Fraction(centre) + exact)
    assert float(low) == round_up(Fraction(centre) - exact)


ENDS_CASES = [
    (-0.3, 3.0, 0.3),  # the regression case: c + Λr = 0.6 exactly, fl(c + fl(Λr)) = 0.5999999999999999
    (0.3, 1.0, 0.1),  # I = [0.2, 0.4] in exact arithmetic ends below the float 0.4
    (2.5, 3.0, 2.6),  # c − Λr is the midpoint of two floats: rounded up, not to even
    (-1.0, 2.3, 0.7),
    (-0.23646791300665093, 1.1, 1.9912896710209256),
    (-2.7, 3.0, 0.9),  # c ≈ −Λr: cancellation, the sum is exact and only Λr's error remains
    (1e6, 1.3, 0.7),  # a large centre: Λr's error is far below the sum's last bit
    # Λr = fl(Λr) + ulp/2 (a tie rounded to even) and c just below half an ulp: the two errors add up to one ulp
    # minus a quarter of the last bit, so c + Λr lies strictly between fl(Λr) and the next float
    (2.0**-52 - 2.0**-105, 3.0, 1 + 3 * 2.0**-52),
    (-(2.0**-52 - 2.0**-105), 3.0, 1 + 3 * 2.0**-52),
]


@pytest.mark.parametrize(("centre", "dilation", "radius"), ENDS_CASES)
def test_rounded_ends_are_the_exact_ends_rounded_inward(centre, dilation, radius):
    check_ends(centre, dilation, radius)


@given(
    st.floats(-1e3, 1e3, allow_nan=False),
    st.floats(1.0, 8.0, allow_nan=False),
    st.one_of(tenths(1, 50), st.floats(1e-3, 1e2, allow_nan=False)),
)
def test_rounded_ends_on_random_floats(centre, dilation, radius):
    check_ends(centre, dilation, radius)
    check_ends(-dilation * radius, dilation, radius)  # c = −fl(Λr): the high end is Λr's error alone
    check_ends(round(centre, 1), dilation, radius)


@pytest.mark.parametrize("window_end", [0.6, 1.0, -0.7, 2.9, math.inf])
def test_exact_dilations_against_fractions(window_end):
    radii = [0.3, 0.36, 0.432, 0.1, 2.6]
    scaled, errors, caps = condition_b_module._exact_dilations(radii, 3.0, window_end)
    assert scaled.dtype == errors.dtype == caps.dtype == torch.float64
    for index, radius in enumerate(radii):
        exact = 3 * Fraction(radius)
        assert float(scaled[index]) == 3.0 * radius
        assert Fraction(float(scaled[index])) + Fraction(float(errors[index])) == exact
        expected = math.inf if math.isinf(window_end) else round_down(Fraction(window_end) - exact)
        assert float(caps[index]) == expected
    if window_end == 0.6:
        assert float(caps[0]) == -0.3  # w − Λr = −0.3 exactly, although 0.6 − 0.8999999999999999 rounds higher


@given(
    st.lists(st.one_of(tenths(1, 50), st.floats(1e-6, 1e3, allow_nan=False)), min_size=1, max_size=8),
    st.one_of(st.sampled_from([2.0, 3.0, 1.5, 1.1]), st.floats(1.001, 16.0, allow_nan=False)),
    st.one_of(st.just(math.inf), tenths(-50, 50), st.floats(-1e3, 1e3, allow_nan=False)),
)
def test_vectorised_exact_dilations_equal_the_rational_ones(radii, dilation, window_end):
    fast = condition_b_module._exact_dilations(radii, dilation, window_end)
    exact = condition_b_module._exact_dilations_rational(radii, dilation, window_end)
    for got, expected in zip(fast, exact, strict=True):
        assert torch.equal(got, expected)


@pytest.mark.parametrize(
    "radii, dilation, window_end",
    [([2.0**-450, 0.5], 3.0, 1.0), ([1e130, 3e130], 2.5, math.inf), ([0.3], 3.0, 2.0**401), ([0.3], 2.0**401, 1.0)],
)
def test_exact_dilations_outside_the_safe_range_use_rationals(radii, dilation, window_end):
    scaled, errors, caps = condition_b_module._exact_dilations(radii, dilation, window_end)
    for index, radius in enumerate(radii):
        exact = Fraction(dilation) * Fraction(radius)
        assert Fraction(float(scaled[index])) + Fraction(float(errors[index])) == exact
        expected = math.inf if math.isinf(window_end) else round_down(Fraction(window_end) - exact)
        assert float(caps[index]) == expected
