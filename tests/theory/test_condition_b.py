"""Tests of ``lightning_stability/theory/condition_b.py`` (docs/theory.md §6): the Condition B bracket.

First kappa_lo <= kappa_B <= kappa_hi against the exhaustive O(N^4) oracle, in the exact-breakpoint mode and on
centre grids, and the witness. Then, each part headed by the file it came from: the bracket on decimal inputs,
where interval ends round, and the tests of the mutation campaign (issue 16, recorded in TESTING.md): closed-boundary
optima and the result's settings, and ``κ_lo``/``κ_hi`` against their definitions in exact arithmetic.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from lightning_stability.theory import condition_b as condition_b_module
from tests.theory.oracles import brute_kappa, dyadic_weights, interval_masses_float

SEEDS = st.integers(0, 2**32 - 1)
SLACK = 1e-9


def scenario(rng):
    """Small random instances; half on a dyadic lattice (exact ties, masses equal to
    the caps, intervals touching values exactly), half generic floats."""
    n = int(rng.integers(1, 10))
    if rng.random() < 0.5:
        return spread_scenario(rng)
    lattice = rng.random() < 0.5
    cluster = rng.random() < 0.4
    if lattice:
        if cluster:  # evenly spread values: kappa > 1 is possible
            vals = np.sort(rng.choice(np.arange(-16, 16), size=n, replace=False)) / 8.0
        else:
            vals = rng.integers(-16, 16, size=n) / 8.0
        Lam = float(rng.integers(39, 96)) / 32.0  # (1.2, 3)
        h = float(rng.integers(1, 24)) / 16.0
        wend = math.inf if rng.random() < 0.5 else float(rng.integers(-12, 20)) / 8.0
    else:
        vals = np.linspace(-1, 1, n) + rng.normal(0, 0.05, n) if cluster else rng.normal(0, 1, n)
        Lam = float(rng.uniform(1.2, 3.0))
        h = float(rng.uniform(0.01, 1.2))
        wend = math.inf if rng.random() < 0.5 else float(rng.uniform(-1.5, 2.5))
    r = rng.random()
    if r < 0.25:
        w = None
        T = n
    elif r < 0.75:
        T = 32
        w = torch.tensor(dyadic_weights(rng, n, total=T))  # may contain zeros
    else:
        T = None
        w = torch.tensor(rng.uniform(0.0, 1.0, size=n) * (rng.random(n) < 0.9))
        if float(w.sum()) == 0:
            w = None
    # caps: either exactly achievable masses (only when they are exact floats) or random
    if T is not None and (T & (T - 1)) == 0 and rng.random() < 0.6:
        m = float(rng.integers(1, T + 1)) / T
        mmin = float(rng.integers(0, int(m * T) + 1)) / T
    else:
        m = float(rng.uniform(0.05, 1.0))
        mmin = float(rng.uniform(0.0, m)) if rng.random() < 0.7 else 0.0
    return torch.tensor(vals, dtype=torch.float64), w, Lam, m, mmin, h, wend


def spread_scenario(rng):
    """Evenly spread values, clusters of >= 2 samples, moderate caps: kappa_B > 1 is
    common here, which exercises the lower end of the bracket."""
    n = int(rng.integers(5, 10))
    lattice = rng.random() < 0.5
    if lattice:
        vals = np.arange(n) / 4.0
        if rng.random() < 0.5:
            vals = vals + rng.integers(-1, 2, size=n) / 16.0
        Lam = float(rng.integers(39, 96)) / 32.0
        h = float(rng.integers(4, 16)) / 16.0
        w = torch.tensor(dyadic_weights(rng, n, total=64, allow_zero=False)) if rng.random() < 0.5 else None
    else:
        vals = np.arange(n) * 0.25 + rng.normal(0, 0.03, n)
        Lam = float(rng.uniform(1.2, 3.0))
        h = float(rng.uniform(0.25, 1.0))
        w = torch.tensor(rng.uniform(0.5, 1.5, size=n)) if rng.random() < 0.5 else None
    mmin = float(rng.uniform(1.5, 3.0)) / n
    m = float(rng.uniform(max(mmin, 0.3), 0.9))
    wend = math.inf if rng.random() < 0.6 else float(vals.max() + rng.uniform(-0.3, 1.0))
    return torch.tensor(vals, dtype=torch.float64), w, Lam, m, mmin, h, wend


def check_bracket(vals, w, Lam, m, mmin, h, wend, **kw):
    res = theory.condition_b_constant(vals, Lam, m, h, min_cluster_mass=mmin, window_end=wend, weights=w, **kw)
    kappa, cr = brute_kappa(vals, Lam, m, h, mmin, wend, w)
    lo, hi = res.lower, res.upper
    assert isinstance(lo, float) and isinstance(hi, float)
    assert res.certified == (lo > 1)
    ctx = dict(kappa=kappa, arg=cr, lower=lo, upper=hi, witness=res.witness)
    if math.isinf(kappa):
        # no admissible interval at all: kappa_hi must be +inf with no witness
        assert hi == math.inf, ctx
        assert res.witness is None, ctx
        return res, kappa
    assert lo <= kappa * (1 + SLACK), ctx
    assert kappa <= hi * (1 + SLACK), ctx
    assert lo >= 0
    # kappa_hi = inf is allowed even when kappa_B < inf (no admissible interval with a
    # grid radius / grid centre): it is still a valid upper end of the bracket.
    if math.isinf(hi):
        assert res.witness is None, ctx
    else:
        check_witness(res, vals, w, Lam, m, mmin, h, wend)
    return res, kappa


def check_witness(res, vals, w, Lam, m, mmin, h, wend):
    """upper is attained by the reported (centre, radius); it is admissible, and
    witness_indices are the values inside I."""
    assert res.witness is not None
    c, r = (float(x) for x in res.witness)
    tol = 1e-12 * max(1.0, abs(c), abs(r))
    assert r >= h / 2 * (1 - 1e-12)
    if not math.isinf(wend):
        assert c + Lam * r <= wend + tol
    mI, mL, inside, inside_pos = interval_masses_float(vals, w, c, r, Lam)
    assert mI > 0
    assert mI >= mmin - 1e-12
    assert mL <= m + 1e-12
    assert mL / mI == pytest.approx(res.upper, rel=1e-9)
    idx = res.witness_indices
    assert isinstance(idx, torch.Tensor) and idx.dtype == torch.long
    got = set(idx.tolist())
    # reading: "indices of values inside that witness interval"; zero-weight samples
    # carry no mass, so they may or may not be listed
    assert inside_pos <= got <= inside, (got, inside, inside_pos)


@settings(max_examples=35, deadline=None)
@given(SEEDS)
def test_kappa_bracket_exact_breakpoints(seed):
    rng = np.random.default_rng(seed)
    vals, w, Lam, m, mmin, h, wend = scenario(rng)
    q = float(rng.choice([1.05, 1.05, 1.2, 1.01]))
    check_bracket(vals, w, Lam, m, mmin, h, wend, radius_ratio=q)


@settings(max_examples=30, deadline=None)
@given(SEEDS)
def test_kappa_bracket_centre_grid(seed):
    rng = np.random.default_rng(seed)
    vals, w, Lam, m, mmin, h, wend = scenario(rng)
    spacing = float(rng.choice([1.0, 0.3, 0.1, 0.037, 0.01])) * h  # the package requires spacing <= h
    q = float(rng.choice([1.05, 1.2]))
    res_grid, kappa = check_bracket(vals, w, Lam, m, mmin, h, wend, radius_ratio=q, centre_spacing=spacing)


def test_isolated_cluster_is_found():
    """Two far apart groups: the lower group is isolated -> kappa_B = 1 with witness."""
    vals = torch.tensor([-3.0, -2.9, -2.95, 1.0, 1.1, 1.2, 1.3, 1.4], dtype=torch.float64)
    res, kappa = check_bracket(vals, None, 2.0, 0.5, 0.25, 0.05, math.inf)
    assert kappa == 1.0
    assert res.upper == 1.0 and not res.certified
    assert set(res.witness_indices.tolist()) & {0, 1, 2}


def test_evenly_spread_values_certify():
    """Equally spaced values, intervals at least 0.7 wide: kappa_B > 1 and certified.
    (With h = 0.5 on this lattice kappa_B = 1.25 but kappa_lo = 1 for every q > 1: the
    relaxation J- = [c +- Lambda r_i] misses the next lattice point by q - 1; the
    bracket only closes in the limit, so that case is not a bug.)"""
    vals = torch.arange(0, 16, dtype=torch.float64) / 4.0
    res, kappa = check_bracket(vals, None, 2.0, 0.5, 2 / 16, 0.7, math.inf, radius_ratio=1.02)
    assert kappa > 1
    assert res.lower > 1 and res.certified


def test_no_admissible_interval():
    vals = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    # window below every value
    res = theory.condition_b_constant(vals, 2.0, 1.0, 0.1, window_end=-1.0)
    assert res.lower == math.inf and res.upper == math.inf and res.witness is None
    assert res.certified  # inf > 1 (condition B holds vacuously)
    # cap below every single mass
    res = theory.condition_b_constant(vals, 2.0, 0.2, 0.1)
    assert res.upper == math.inf and res.witness is None
    assert brute_kappa(vals, 2.0, 0.2, 0.1)[0] == math.inf


# =====================================================================================================================
# From test_condition_b_rounding.py — ``κ_lo ≤ κ_B ≤ κ_hi`` of `condition_b_constant` on decimal inputs, where interval ends round (issue 16).
#
# On decimal values, dilations, widths and windows the float ends ``c ± Λr`` of a dilated interval are rounded;
# ``κ_hi`` used to be the ratio of a candidate interval whose ends were rounded *inward*, so it could miss a
# value that the exact interval holds and fall below the exact ``κ_B`` (margins ``[0, 0.6]``, ``Λ = 3``,
# ``h = w = 0.6``: ``κ_hi = 1``, ``κ_B = 2``, see TESTING.md). Here the exact ``κ_B`` comes from
# `oracles.brute_kappa` (exact Fractions of the float inputs), and the reported witness is re-checked with
# Fractions: it must be admissible and its exact ratio must be ``κ_hi``.
#
# The sample masses are exact in these tests (``N`` a power of two, or integer weights summing to a power of
# two), so that only the positions are rounded. The two private helpers that make the ends exact are checked
# against Fractions as well: ``_rounded_ends`` (the inward-rounded ends of ``[c ± Λr]``) and ``_exact_dilations``
# (``fl(Λr)``, its error and the largest centre with ``c + Λr ≤ w``), including the cases where an end of the exact
# interval lies within one rounding of a float.
# =====================================================================================================================


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


# =====================================================================================================================
# From test_mutation_kills_condition_b.py — Condition B brackets on small sets where the optimum is a closed-boundary configuration (issue 16).
#
# The exact-breakpoint centres of `condition_b_constant` (``centre_spacing=None``) must include the last
# admissible centre ``c = w − Λr`` and the midpoint of *every* pair of consecutive breakpoints; the mutation run
# found both unpinned (the older brute-force tests pass with either dropped). On the sets below the least ratio
# is attained at the grid radius ``h/2`` by a single centre (the exact oracle's witness has that radius and the
# package's witness is the same interval), so ``κ_hi`` must equal the exact ``κ_B`` of
# `tests.theory.oracles.brute_kappa`, and ``κ_lo ≤ κ_B`` must hold. All values are dyadic, hence exact in float64.
# =====================================================================================================================


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
def test_no_admissible_interval_echoes_the_settings(window_end, width):
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


# =====================================================================================================================
# From test_mutation_kills_condition_b_bracket.py — ``κ_lo`` and ``κ_hi`` of `condition_b_constant` against their definitions, in exact arithmetic (issue 16).
#
# The older tests check that the bracket *contains* the exact ``κ_B``; the mutation run showed that a bracket
# which is looser, or built on a different radius grid or centre set, still passes them. The docstring of
# `condition_b_constant` defines both ends precisely, and `bracket_oracle` below recomputes them from that text
# with Fractions (no code shared with the package):
#
# * radii ``r_i = (h/2) q^i``, ``i = 0..R``, ``R`` the least integer ``≥ 1`` with ``r_R ≥`` the top radius
#   ``min(max(h/2, span/(Λ−1), span/2), (w − min)/(Λ−1))`` of the window's values;
# * ``κ_hi = min_i min_c μ([c ± Λr_i]) / μ([c ± r_i])`` over admissible centres (``c + Λr_i ≤ w``,
#   ``μ(ΛI) ≤ m``, ``μ(I) ≥ m_min``, ``μ(I) > 0``);
# * ``κ_lo = min_i min_c μ([c ± Λr_i]) / μ([c ± r_{i+1}])`` over the same centres (``c + Λr_i ≤ w``), together with
#   the tail bound ``M_w / μ(δ ≤ w − (Λ−1) r_R)`` when ``r_R < (w − min)/(Λ−1)`` and ``M_w ≤ m``, then
#   ``max(1, κ_lo (1 − 1e-12))`` and at most ``κ_hi``;
# * with ``centre_spacing = b`` the centres run over ``bℤ`` and ``κ_lo`` uses ``[c ± (Λr_i − b/2)]`` over
#   ``[c ± (r_{i+1} + b/2)]`` with ``c ≤ w − Λr_i + b/2``.
#
# Values, ``h``, ``b``, ``Λ`` and ``q`` (3/2, or 5/4 when ``Λ = 3/2``) are dyadic, so every interval end the package computes is exact; only
# the masses ``k/N`` are rounded, so the two computations must agree to 1e-14 relative.
# =====================================================================================================================


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


BRACKET_CASES = [
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


@pytest.mark.parametrize("case", range(len(BRACKET_CASES)))
@pytest.mark.parametrize("spacing_fraction", [None, 0.25])
def test_bracket_matches_its_definition(case, spacing_fraction):
    values, dilation, cap, width, cluster, window = BRACKET_CASES[case]
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
