"""Tests of ``lightning_stability/theory/certificate.py`` (docs/theory.md §4–§7): ``certify``.

First §7 ``certify()``: the report against the oracles; floors ordered; reproducibility; invariance to permutations
and weight scaling. Then, each part headed by the file it came from: the reported floors against independent oracles,
the pruned Theorem B search, and the tests of the mutation campaign (issue 16, recorded in TESTING.md): the grid by
hand and the batched Theorem A search row by row (the floors themselves: tests/theory/test_floors.py).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from lightning_stability.theory import certificate, floors
from lightning_stability.theory.condition_a import condition_a_constants, condition_a_envelope_values
from tests.theory.exact_oracles import (
    as_float,
    envelope_u_a,
    envelope_u_b,
    exact_cdf,
    exact_condition_a,
    floor_of,
    lattice_kappa_b,
    oracle_floors,
    rational_weights,
)
from tests.theory.oracles import (
    brute_condition_a,
    close,
    naive_bad_mass,
    naive_good_mass,
    naive_loss_bounds,
    naive_loss_floor,
    phi_u_a_exact,
    phi_u_b_exact,
)

SEEDS = st.integers(0, 2**32 - 1)
# a small grid keeps certify() fast under hypothesis (keys of theory.CertificateGrid)
SMALL = dict(zetas=(0.05, 0.2, 0.5), tau_fractions=(0.0625,), gammas=(1.0, 4.0), width_fractions=(0.125,))


def random_case(rng):
    n = int(rng.integers(1, 40))
    K = int(rng.choice([2, 3, 10]))
    kind = rng.random()
    if kind < 0.4:
        d = rng.normal(2.0, 2.0, size=n)
    elif kind < 0.7:
        d = rng.integers(-8, 40, size=n) / 8.0
    else:
        d = np.concatenate([rng.normal(5.0, 1.0, size=n), rng.normal(-3.0, 0.5, size=1)])
        n += 1
    d = torch.tensor(d, dtype=torch.float64)
    r = rng.random()
    if r < 0.5:
        w = None
    else:
        w = torch.tensor(rng.uniform(0.1, 2.0, size=n))
    return d, K, w


def check_report(rep, d, K, w, loss=None):
    n = len(d)
    assert rep.num_samples == n and rep.num_classes == K
    assert rep.accuracy == pytest.approx(naive_good_mass(d, 0.0, w), abs=1e-12)
    assert rep.accuracy == pytest.approx(theory.good_mass(d, 0.0, weights=w), abs=1e-14)
    lo, hi = naive_loss_bounds(d, K, w)
    assert rep.loss_lower == pytest.approx(lo, rel=1e-9, abs=1e-15)
    assert rep.loss_upper == pytest.approx(hi, rel=1e-12, abs=1e-15)
    assert rep.margin_loss_floor == pytest.approx(naive_loss_floor(hi), abs=1e-12)
    if loss is None:
        assert rep.loss is None
        assert rep.loss_floor == pytest.approx(naive_loss_floor(hi), abs=1e-12)
    else:
        assert rep.loss == loss
        assert rep.loss_floor == pytest.approx(naive_loss_floor(loss), abs=1e-12)
    assert rep.margin_min == float(d.min())
    assert isinstance(rep.mass_etas, tuple) and isinstance(rep.good_masses, tuple)
    assert isinstance(rep.bad_masses, tuple)
    assert len(rep.mass_etas) == len(rep.good_masses) == len(rep.bad_masses) > 0
    for eta, gm, bm in zip(rep.mass_etas, rep.good_masses, rep.bad_masses):
        assert gm == pytest.approx(naive_good_mass(d, eta, w), abs=1e-12)
        assert bm == pytest.approx(naive_bad_mass(d, eta, w), abs=1e-12)
    # §7: 0 <= thm floor <= loss floor from sum mu f_K <= 1
    assert 0.0 <= rep.theorem_a.floor <= rep.margin_loss_floor + 1e-12
    assert 0.0 <= rep.theorem_b.floor <= rep.margin_loss_floor + 1e-12
    assert rep.margin_loss_floor <= 1.0
    # the reported eta keeps the bad set empty
    assert rep.theorem_a.eta >= -float(d.min())
    assert rep.theorem_b.eta >= -float(d.min())
    dct = rep.to_dict()
    assert isinstance(dct, dict) and dct
    for k, v in dct.items():
        assert isinstance(k, str)
        assert isinstance(v, float), (k, v)


def reproduce(rep, d, K, w):
    ta, tb = rep.theorem_a, rep.theorem_b
    ra = theory.theorem_a_floor(d, K, ta.eta, ta.eta0, ta.gamma, lam0=ta.lam0, weights=w)
    assert ra.floor == pytest.approx(ta.floor, abs=1e-12)
    assert ra.envelope_bound == pytest.approx(ta.envelope_bound, rel=1e-12)
    assert ra.condition_a_constant == pytest.approx(ta.condition_a_constant, rel=1e-12)
    rb = theory.theorem_b_floor(
        d,
        K,
        tb.eta,
        tb.eta0,
        dilation=tb.dilation,
        min_width=tb.min_width,
        min_cluster_mass=tb.min_cluster_mass,
        weights=w,
    )
    assert rb.kappa_lower == pytest.approx(tb.kappa_lower, rel=1e-12), (rb, tb)
    assert rb.floor == pytest.approx(tb.floor, abs=1e-12), (rb, tb)


@settings(max_examples=12, deadline=None)
@given(SEEDS)
def test_certify_report_fields(seed):
    rng = np.random.default_rng(seed)
    d, K, w = random_case(rng)
    rep = theory.certify(d, K, weights=w, **SMALL)
    check_report(rep, d, K, w)


@settings(max_examples=6, deadline=None)
@given(SEEDS)
def test_certify_reported_parameters_reproduce_floors(seed):
    rng = np.random.default_rng(seed)
    d, K, w = random_case(rng)
    rep = theory.certify(d, K, weights=w, **SMALL)
    reproduce(rep, d, K, w)


def test_certify_default_grid():
    torch.manual_seed(0)
    d = torch.cat([torch.randn(60, dtype=torch.float64) + 4.0, torch.tensor([-1.5, 0.3])])
    rep = theory.certify(d, 10)
    check_report(rep, d, 10, None)
    reproduce(rep, d, 10, None)


@settings(max_examples=4, deadline=None)
@given(SEEDS)
def test_certify_invariances(seed):
    """Permuting samples (with their weights) or scaling the weights changes nothing."""
    rng = np.random.default_rng(seed)
    d, K, w = random_case(rng)
    if w is None:
        w = torch.ones(len(d), dtype=torch.float64)
    base = theory.certify(d, K, weights=w, **SMALL).to_dict()
    perm = torch.tensor(rng.permutation(len(d)))
    per = theory.certify(d[perm], K, weights=w[perm], **SMALL).to_dict()
    scl = theory.certify(d, K, weights=w * 3.7, **SMALL).to_dict()
    assert set(base) == set(per) == set(scl)
    for k in base:
        assert close(base[k], per[k], rel=1e-12, abs_=1e-12), (k, base[k], per[k])
        assert close(base[k], scl[k], rel=1e-12, abs_=1e-12), (k, base[k], scl[k])


@pytest.mark.parametrize("grid", [SMALL, {}], ids=["small-grid", "default-grid"])
def test_certify_none_weights_equal_uniform_tensor(grid):
    """weights=None means uniform 1/N, so it must give the same report as torch.ones(N).
    (A deterministic case: 19 margins around 5 and one at -3.14, K = 3.)"""
    rng = np.random.default_rng(1)
    d, K, _ = random_case(rng)
    uni = theory.certify(d, K, **grid).to_dict()
    ones = theory.certify(d, K, weights=torch.ones(len(d), dtype=torch.float64), **grid).to_dict()
    diff = {k: (uni[k], ones[k]) for k in uni if not close(uni[k], ones[k], rel=1e-12, abs_=1e-12)}
    assert not diff, diff


def test_certify_with_exact_loss():
    torch.manual_seed(1)
    z = torch.randn(30, 5, dtype=torch.float64) * 3
    y = torch.randint(0, 5, (30,))
    z[torch.arange(30), y] += 4.0
    d = theory.margins(z, y)
    L = float(theory.per_sample_cross_entropy(z, y).mean())
    rep = theory.certify(d, 5, loss=L, **SMALL)
    check_report(rep, d, 5, None, loss=L)
    # the exact loss is below the margin bound, so its floor is at least as strong
    assert rep.loss_floor >= rep.margin_loss_floor - 1e-12
    assert rep.loss_floor == pytest.approx(theory.loss_floor(L), abs=1e-15)


def test_certify_unknown_override():
    d = torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64)
    with pytest.raises(ValueError):
        theory.certify(d, 3, no_such_grid_key=1)


# =====================================================================================================================
# From test_certify_floors.py — §4–§7: the Theorem A and B floors that ``certify`` reports, against independent oracles.
#
# From the FREE parameters a report carries (``η``, ``η0``, ``γ``, ``λ0`` for Theorem A; ``η``, ``η0``,
# ``Λ``, ``h``, ``m_min`` for Theorem B) the oracle recomputes the DERIVED ones exactly (``ζ = F(η0)``,
# ``C_A``, ``κ_B``), builds ``U_A`` / ``U_B`` literally (docs/theory.md §5, §6 Lemma 3) and brackets ``Φ(U)``
# (§4) between a lower and an upper Riemann sum on 2^16 pieces. The true floor ``1 − Φ(U)/log 2``
# therefore lies in ``[1 − Φ_upper/log 2, 1 − Φ_lower/log 2]``, and we assert
#
# * soundness: ``envelope_bound ≥ Φ_lower`` and ``floor ≤ 1 − Φ_lower/log 2`` (a reported floor above the
#   true one would be a false certificate);
# * tightness: ``floor ≥ 1 − Φ_upper/log 2 − FLOOR_TOL`` (the package's upper sum is not wastefully loose);
# * the reported ``C_A`` equals the exact ``C_A`` at the reported ``(η, γ, λ0)``;
# * ``κ_lo ≤ κ_B ≤ κ_hi`` with the exact ``κ_B`` (window of at most ``MAX_BRUTE_WINDOW`` values);
# * both envelopes lie above the empirical ``F(−η + ·)`` and ``Σ μ f_K(δ) ≤ Φ(U)`` (Lemma 2).
#
# The margin distributions of ``NONTRIVIAL`` are shaped like a trained classifier's (a wide positive
# bulk, a thin transition and a few % of negative margins); for them Condition B is certified
# (``κ_lo > 1``) and the Theorem B floor is positive, so the decaying envelope ``U_B`` (not the
# trivial ``U ≡ ζ``) is what ``certify`` reports and what is checked.
# =====================================================================================================================


FLOOR_TOL = 2e-3
"""Tightness: the package's upper sum uses 4096 pieces (docs/theory.md §4: "converges as the partition is
refined"); its floor may sit at most this far below the oracle's floor from the upper Riemann sum."""
PHI_REL = 1e-12  # float64 rounding slack of the soundness comparisons
MAX_BRUTE_WINDOW = 64  # values in (−∞, η0] up to which the exact κ_B is enumerated


def _lambda_points(d, eta, D):
    return sorted({x + eta for x in d.tolist() if 0 < x + eta <= D})


def _check_envelope_dominates_F(U, d, w, eta, D):
    """``U(λ) ≥ F(−η + λ)`` at every jump ``λ_k`` of ``F`` in ``(0, D]`` (where ``F`` is largest on its step)."""
    lams = _lambda_points(d, eta, D)
    assert lams, "certify picks η = −min δ + τ with τ > 0, so λ = min δ + η lies in (0, D]"
    values = U(np.array(lams))
    for lam, u in zip(lams, values.tolist()):
        F = as_float(exact_cdf(d, Fraction(lam) - Fraction(eta), w))
        assert u >= F - 1e-12, (lam, u, F)


def _positive_minimum(d, w):
    if w is None:
        return float(d.min())
    return float(d[w > 0].min())


def check_theorem_a(rep, d, K, w):
    ta = rep.theorem_a
    eta, eta0, gamma, lam0 = ta.eta, ta.eta0, ta.gamma, ta.lam0
    D = eta + eta0
    assert _positive_minimum(d, w) >= -eta, "B_eta must be empty"
    assert D > 0 and 0 < lam0 <= D
    zeta = exact_cdf(d, eta0, w)
    assert ta.zeta == pytest.approx(as_float(zeta), abs=1e-15)
    C = exact_condition_a(d, eta, gamma, lam0, w)
    C_float = as_float(C)
    if C == math.inf:
        assert ta.condition_a_constant == math.inf
    else:
        assert ta.condition_a_constant == pytest.approx(C_float, rel=1e-13, abs=0.0)
        assert brute_condition_a(d, eta, gamma, lam0, w) == pytest.approx(C_float, rel=1e-13, abs=0.0)
    U = envelope_u_a(C_float, gamma, lam0, as_float(zeta))
    _check_envelope_dominates_F(U, d, w, eta, D)
    lower, upper, floor_hi, floor_lo = oracle_floors(U, eta, eta0, K)
    exact = phi_u_a_exact(C_float, gamma, lam0, as_float(zeta), eta, eta0, K)
    assert lower * (1 - PHI_REL) <= exact <= upper * (1 + PHI_REL), (lower, exact, upper)  # oracle self-check
    _check_phi_and_floor(ta, lower, upper, floor_hi, floor_lo, rep, d, K, w)
    return lower, upper


def check_theorem_b(rep, d, K, w, require_brute=False):
    tb = rep.theorem_b
    eta, eta0, Lam, h, m_min = tb.eta, tb.eta0, tb.dilation, tb.min_width, tb.min_cluster_mass
    D = eta + eta0
    assert _positive_minimum(d, w) >= -eta, "B_eta must be empty"
    assert D > 0 and Lam > 1 and h > 0 and 0 <= m_min <= tb.max_mass
    zeta = exact_cdf(d, eta0, w)
    assert tb.zeta == pytest.approx(as_float(zeta), abs=1e-15)
    assert tb.max_mass >= as_float(zeta) * (1 - 1e-12), "Lemma 3 needs the cap m >= zeta"
    kappa_lo, kappa_hi = tb.kappa_lower, tb.kappa_upper
    assert 0 <= kappa_lo <= kappa_hi
    mu = rational_weights(w, len(d))
    window = sum(1 for x, m in zip(d.tolist(), mu) if m > 0 and x <= eta0)
    if window <= MAX_BRUTE_WINDOW:
        cap = max(Fraction(float(tb.max_mass)), zeta)  # the exact zeta if the float one is 1 ulp low
        kappa_b, arg = lattice_kappa_b(d, Lam, cap, h, m_min, eta0, w)
        assert kappa_lo <= kappa_b * (1 + 1e-12), (kappa_lo, kappa_b, arg)
        assert kappa_b <= kappa_hi * (1 + 1e-12), (kappa_b, kappa_hi, arg)
    else:
        assert not require_brute, f"window of {window} values: too large for the exact kappa_B"
    U = envelope_u_b(kappa_lo, Lam, as_float(zeta), m_min, h, D)
    _check_envelope_dominates_F(U, d, w, eta, D)
    lower, upper, floor_hi, floor_lo = oracle_floors(U, eta, eta0, K)
    exact = phi_u_b_exact(kappa_lo, Lam, as_float(zeta), m_min, h, eta, eta0, K)
    assert lower * (1 - PHI_REL) <= exact <= upper * (1 + PHI_REL), (lower, exact, upper)  # oracle self-check
    _check_phi_and_floor(tb, lower, upper, floor_hi, floor_lo, rep, d, K, w)
    return lower, upper


def _check_phi_and_floor(result, lower, upper, floor_hi, floor_lo, rep, d, K, w):
    assert upper - lower <= 1e-3 * upper, "oracle partition too coarse"
    # soundness: the reported bound is an upper bound of Φ(U), so the floor is a true floor
    assert result.envelope_bound >= lower * (1 - PHI_REL), (result.envelope_bound, lower)
    assert result.floor <= floor_hi + 1e-12, (result.floor, floor_hi)
    # tightness
    assert result.envelope_bound <= upper + FLOOR_TOL * math.log(2.0), (result.envelope_bound, upper)
    assert result.floor >= floor_lo - FLOOR_TOL, (result.floor, floor_lo)
    # the floor is the Theorem 0 floor of the reported bound, below the margin loss floor (§7)
    assert result.floor == pytest.approx(floor_of(result.envelope_bound), abs=1e-12)
    assert 0.0 <= result.floor <= rep.margin_loss_floor + 1e-12
    # Lemma 2: Σ μ f_K(δ) ≤ Φ(U) for an envelope above F
    _, loss_upper = naive_loss_bounds(d, K, w)
    assert loss_upper <= upper * (1 + PHI_REL)


# ---------------------------------------------------------------------------
# trained-classifier-shaped margins: Condition B certified, Theorem B floor > 0
# ---------------------------------------------------------------------------


def classifier_margins(n, tail, transition, transition_end, bulk_end):
    """Deterministic quantiles of a piecewise-uniform margin density, rounded down to ℤ/64:
    ``tail`` of the mass on [−1, 0), ``transition`` on [0, transition_end), the rest on
    [transition_end, bulk_end]. Dyadic values make every sum exact (so are ``η``, ``η0``, ``D``)."""
    u = (np.arange(n) + 0.5) / n
    d = np.where(
        u < tail,
        -1 + u / tail,
        np.where(
            u < tail + transition,
            (u - tail) / transition * transition_end,
            transition_end + (u - tail - transition) / (1 - tail - transition) * (bulk_end - transition_end),
        ),
    )
    return torch.tensor(np.floor(d * 64) / 64, dtype=torch.float64)


NONTRIVIAL = {
    # name: (margins, K, weights)
    "K2-N200": (classifier_margins(200, 0.05, 0.15, 2.0, 8.0), 2, None),
    "K3-N200": (classifier_margins(200, 0.05, 0.15, 2.0, 8.0), 3, None),
    "K10-N160": (classifier_margins(160, 0.03, 0.15, 5.0, 15.0), 10, None),
    "K3-N200-weighted": (
        classifier_margins(200, 0.05, 0.15, 2.0, 8.0),
        3,
        torch.tensor([1.0 + (k % 3) for k in range(200)], dtype=torch.float64),
    ),
}


@pytest.mark.parametrize("name", sorted(NONTRIVIAL))
def test_certify_nontrivial_theorem_b_against_oracles(name):
    d, K, w = NONTRIVIAL[name]
    # the shape the test claims: most mass in the positive bulk, a few % negative
    assert 0.02 <= float((d < 0).double().mean()) <= 0.06
    assert float((d >= 2.0).double().mean()) >= 0.8
    rep = theory.certify(d, K, weights=w)
    tb = rep.theorem_b
    assert tb.kappa_lower > 1.0, tb  # Condition B certified: U_B decays below ζ
    assert tb.floor > 0.0, tb  # ... and yields a non-trivial accuracy floor
    assert rep.theorem_a.floor > 0.0
    check_theorem_a(rep, d, K, w)
    lower, upper = check_theorem_b(rep, d, K, w, require_brute=True)
    # U_B with κ_lo > 1 is strictly better than the trivial envelope U ≡ ζ
    trivial = oracle_floors(lambda lam: np.full_like(lam, tb.zeta), tb.eta, tb.eta0, K)
    assert upper < trivial[0]


# ---------------------------------------------------------------------------
# random small cases on a dyadic lattice (ties, zero margins, zero weights)
# ---------------------------------------------------------------------------

SMALL_GRID = dict(zetas=(0.1, 0.3, 0.5), tau_fractions=(1 / 16, 1 / 4), gammas=(0.5, 1.0, 4.0))


@st.composite
def lattice_cases(draw):
    n = draw(st.integers(1, 14))
    d = [x / 16 for x in draw(st.lists(st.integers(-32, 160), min_size=n, max_size=n))]
    if draw(st.booleans()):
        d[draw(st.integers(0, n - 1))] = 0.0
    w = draw(st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    if w is not None and sum(w) == 0:
        w[0] = 1
    K = draw(st.sampled_from([2, 3, 10]))
    return d, w, K, False  # the default grid (slower on small N) runs in the NONTRIVIAL cases and examples


@settings(max_examples=40)
@given(lattice_cases())
@example(([0.0, 1.0, 1.0, 1.0], None, 2, True))  # the λ_k = λ0 tie case of Condition A
@example(([0.0, 0.0, 0.0, 0.0], None, 3, True))  # all margins tied at 0
@example(([-1.0, 0.0, 0.0, 2.0, 2.0, 5.0], [0, 1, 1, 2, 0, 1], 10, False))  # zero weights, ties
@example(([4.0, 4.0, 4.0, 5.0, 6.0, -0.5], [1, 1, 1, 1, 1, 3], 2, True))  # one heavy wrong sample
def test_certify_floors_match_oracles_on_lattice(case):
    d, w, K, default_grid = case
    d = torch.tensor(d, dtype=torch.float64)
    w = None if w is None else torch.tensor([float(x) for x in w], dtype=torch.float64)
    rep = theory.certify(d, K, weights=w, **({} if default_grid else SMALL_GRID))
    check_theorem_a(rep, d, K, w)
    check_theorem_b(rep, d, K, w, require_brute=True)


# =====================================================================================================================
# From test_certify_search.py — `certify` skips the Condition B bracket of windows that cannot hold the best Theorem B candidate (§7): the
# result must equal the exhaustive search that brackets every window, on trained-classifier-shaped margins.
# =====================================================================================================================


def exhaustive(sorted_margins, num_classes, grid, candidates, search_size):
    """Every window bracketed, every candidate bounded: the search before the pruning."""
    for row in candidates:
        spacing = None if grid.centre_spacing_fraction is None else grid.centre_spacing_fraction * row["min_width"]
        bracket = certificate.condition_b_constant(
            sorted_margins,
            grid.dilation,
            max_mass=row["zeta"],
            min_width=row["min_width"],
            min_cluster_mass=row["min_cluster_mass"],
            window_end=row["eta0"],
            radius_ratio=grid.radius_ratio,
            centre_spacing=spacing,
        )
        row["kappa_lower"], row["kappa_upper"] = bracket.lower, bracket.upper
    return floors.theorem_b_bounds(candidates, num_classes, search_size)


@pytest.mark.parametrize("seed", range(6))
def test_pruned_search_equals_the_exhaustive_one(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(seed)
    size = (300, 1000, 3000)[seed % 3]
    margins = torch.randn(size, generator=generator, dtype=torch.float64) * (1 + seed % 3) + 3
    tail = size // 50 * (seed % 2)
    if tail:
        margins[:tail] = -torch.rand(tail, generator=generator, dtype=torch.float64)
    calls = {"brackets": 0}
    original = certificate.condition_b_constant

    def counted(*args, **kwargs):
        calls["brackets"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(certificate, "condition_b_constant", counted)
    pruned = theory.certify(margins, 10, loss=0.1)
    pruned_calls = calls["brackets"]
    monkeypatch.setattr(certificate, "_theorem_b_search", exhaustive)
    full = theory.certify(margins, 10, loss=0.1)
    assert pruned.theorem_b == full.theorem_b and pruned.theorem_a == full.theorem_a
    assert math.isfinite(pruned.theorem_b.envelope_bound)
    # the exhaustive search brackets every window once per candidate (one per τ of the grid)
    windows = (calls["brackets"] - pruned_calls) // len(theory.CertificateGrid().tau_fractions)
    assert 1 <= pruned_calls < windows


@pytest.mark.parametrize("weighted", [False, True])
def test_a_presorted_distribution_gives_the_same_report(weighted: bool) -> None:
    """`certify(..., sorted_margins=SortedMargins(margins, weights))` (the monitor sorts once for certify and its
    quantiles) reports exactly what `certify` reports when it sorts itself."""
    generator = torch.Generator().manual_seed(3)
    margins = torch.cat([torch.rand(300, generator=generator) * 4 + 0.5, -torch.rand(12, generator=generator)])
    margins = margins.double()
    weights = torch.randint(0, 3, (312,), generator=generator).double() if weighted else None
    expected = theory.certify(margins, 5, weights=weights, loss=0.4, gammas=(1.0, 2.0))
    presorted = theory.SortedMargins(margins, weights)
    got = theory.certify(margins, 5, weights=weights, loss=0.4, sorted_margins=presorted, gammas=(1.0, 2.0))
    assert got.to_dict() == expected.to_dict()


def test_a_presorted_distribution_of_other_margins_is_refused() -> None:
    margins = torch.linspace(-0.5, 3.0, 40, dtype=torch.float64)
    expected = (
        "`sorted_margins` holds 30 margins but `margins` has 40; pass SortedMargins(margins, weights) of the same "
        "margins."
    )
    with pytest.raises(ValueError) as raised:
        theory.certify(margins, 3, sorted_margins=theory.SortedMargins(margins[:30]))
    assert str(raised.value) == expected
    with pytest.raises(ValueError) as raised:
        theory.certify(margins, 3, sorted_margins=margins)  # type: ignore[arg-type]
    assert (
        str(raised.value)
        == "`sorted_margins` must be a SortedMargins built from these margins and weights, got Tensor."
    )


# =====================================================================================================================
# From test_mutation_kills_certify.py — `certify`'s grid (docs/theory.md §7, `CertificateGrid`) checked by hand (issue 16, see TESTING.md).
#
# The mutation run found that nothing pinned the grid `certify` searches: the scale ``s`` (median − min, else
# the range, else 1), the ``η0`` quantiles when ``F`` hits a level exactly, and the Condition B settings of
# Theorem B (window ``w = η0``, centre spacing ``fraction × h``). With one value per grid the search has a
# single candidate, so the reported parameters are fixed by the documentation and computed here by hand.
#
# Margins: the dyadic grid ``−1 + k/16`` (k = 0..63) plus a pair of samples at 10 and 10.0625, an isolated
# cluster *above* the window ``η0 = 1`` (with the window it is invisible; without it ``κ = 1``).
# =====================================================================================================================


GRID_MARGINS = torch.tensor([-1 + k / 16 for k in range(64)] + [10.0, 10.0625], dtype=torch.float64)
ONE_CANDIDATE = dict(zetas=(0.5,), tau_fractions=(0.25,), gammas=(1.0,), partition_size=64, search_partition_size=64)


def test_single_candidate_parameters_by_hand():
    report = theory.certify(GRID_MARGINS, 3, **ONE_CANDIDATE)
    # median: smallest v with F(v) >= 1/2 = 33/66 -> v = -1 + 32/16 = 1 (F hits 1/2 exactly there);
    # s = 1 − (−1) = 2, τ = s/4 = 0.5, η = τ − min δ = 1.5; η0 = the 1/2-quantile = 1, ζ = F(1) = 1/2
    for floor in (report.theorem_a, report.theorem_b):
        assert (floor.eta, floor.eta0, floor.zeta) == (1.5, 1.0, 0.5)
    assert report.theorem_a.gamma == 1.0 and report.theorem_a.lam0 == 2.5  # λ0 = D = η + η0
    b = report.theorem_b
    assert b.min_width == 0.25  # h = (1/8)(η0 − min δ)
    assert b.min_cluster_mass == 0.025  # m_min = 0.05 ζ
    assert (b.max_mass, b.dilation) == (0.5, 2.0)


def test_theorem_b_bracket_uses_the_window_and_the_centre_grid():
    b = theory.certify(GRID_MARGINS, 3, **ONE_CANDIDATE).theorem_b
    documented = theory.condition_b_constant(
        GRID_MARGINS,
        2.0,
        max_mass=0.5,
        min_width=0.25,
        min_cluster_mass=0.025,
        window_end=1.0,
        radius_ratio=1.05,
        centre_spacing=0.25 / 8,
    )
    assert (b.kappa_lower, b.kappa_upper) == (documented.lower, documented.upper)
    exact, _ = lattice_kappa_b(GRID_MARGINS, 2.0, Fraction(1, 2), 0.25, 0.025, window_end=1.0)
    assert exact == 4 / 3
    assert b.kappa_lower <= exact <= b.kappa_upper
    assert b.kappa_lower > 1.0  # the pair above the window does not count
    # the same bracket without a window finds the pair (κ = 1), exact centres give another lower end:
    # both settings matter on these margins
    assert theory.condition_b_constant(GRID_MARGINS, 2.0, 0.5, 0.25, min_cluster_mass=0.025).upper == 1.0
    exact_centres = theory.condition_b_constant(
        GRID_MARGINS, 2.0, 0.5, 0.25, min_cluster_mass=0.025, window_end=1.0, radius_ratio=1.05
    )
    assert exact_centres.lower != b.kappa_lower


def test_exact_centres_when_the_fraction_is_none():
    b = theory.certify(GRID_MARGINS, 3, centre_spacing_fraction=None, **ONE_CANDIDATE).theorem_b
    documented = theory.condition_b_constant(
        GRID_MARGINS, 2.0, max_mass=0.5, min_width=0.25, min_cluster_mass=0.025, window_end=1.0, radius_ratio=1.05
    )
    assert (b.kappa_lower, b.kappa_upper) == (documented.lower, documented.upper)


@pytest.mark.parametrize(
    "margins,eta,eta0,zeta",
    [
        # median = min = 0: s = range = 4, τ = 1, η = 1; the 1/2-quantile is 0 = min δ, so η0 = min δ + s = 4
        ([0.0, 0.0, 0.0, 4.0], 1.0, 4.0, 1.0),
        # all equal: s = 1, τ = 1/4, η = 1/4 − 2; η0 = 2 + 1 = 3, ζ = F(3) = 1
        ([2.0, 2.0, 2.0], -1.75, 3.0, 1.0),
        # median 1 (F(1) = 1/2 exactly), s = 1 − (−1) = 2, τ = 1/2, η = 3/2; η0 = 1
        ([-1.0, 1.0, 2.0, 3.0], 1.5, 1.0, 0.5),
    ],
)
def test_scale_fallbacks(margins, eta, eta0, zeta):
    report = theory.certify(torch.tensor(margins, dtype=torch.float64), 3, **ONE_CANDIDATE)
    assert (report.theorem_a.eta, report.theorem_a.eta0, report.theorem_a.zeta) == (eta, eta0, zeta)
    assert (report.theorem_b.eta, report.theorem_b.eta0, report.theorem_b.zeta) == (eta, eta0, zeta)


def test_quantile_value_takes_the_value_where_f_reaches_the_level_exactly():
    sorted_margins = theory.SortedMargins(torch.tensor([3.0, 0.0, 2.0, 1.0], dtype=torch.float64))
    assert sorted_margins.quantile_value(0.5) == 1.0  # F(1) = 1/2
    assert sorted_margins.quantile_value(0.25) == 0.0
    assert sorted_margins.quantile_value(0.5000001) == 2.0
    assert sorted_margins.quantile_value(1.0) == 3.0
    weighted = theory.SortedMargins(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 2.0]))
    assert weighted.quantile_value(0.5) == 1.0  # F(1) = 2/4


def test_unknown_grid_parameter_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown certify grid parameter\(s\) \['gama'\]; valid ones are: zetas, "):
        theory.certify(GRID_MARGINS, 3, gama=(1.0,))


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_cluster_mass_fractions_may_be_zero_or_one(fraction):
    grid = theory.CertificateGrid(cluster_mass_fractions=(fraction,))
    assert grid.cluster_mass_fractions == (fraction,)
    b = theory.certify(GRID_MARGINS, 3, cluster_mass_fractions=(fraction,), **ONE_CANDIDATE).theorem_b
    assert b.min_cluster_mass == fraction * 0.5


def test_grid_values_are_stored_as_float_tuples():
    grid = theory.CertificateGrid(zetas=[1, 0.5], gammas=(2,))
    assert grid.zetas == (1.0, 0.5) and grid.gammas == (2.0,)
    assert all(type(value) is float for value in grid.zetas + grid.gammas)


def test_given_loss_sets_the_theorem_0_floor():
    report = theory.certify(GRID_MARGINS, 3, loss=0.5, **ONE_CANDIDATE)
    assert report.loss == 0.5 and report.loss_floor == 1 - 0.5 / math.log(2.0)
    assert report.margin_loss_floor == max(0.0, 1 - report.loss_upper / math.log(2.0))
    zero = theory.certify(GRID_MARGINS, 3, loss=0.0, **ONE_CANDIDATE)
    assert zero.loss_floor == 1.0


@pytest.mark.parametrize("gamma", [0.3, 1.7])
def test_condition_a_constant_uses_the_exact_float64_gamma(gamma):
    # γ = 0.3 is not a float32 number: a γ rounded to float32 (0.30000001192…) changes C_A in the 8th digit
    report = theory.certify(GRID_MARGINS, 3, **{**ONE_CANDIDATE, "gammas": (gamma,)})
    a = report.theorem_a
    assert a.gamma == gamma
    exact = exact_condition_a(GRID_MARGINS, a.eta, gamma, a.lam0)
    assert a.condition_a_constant == pytest.approx(as_float(exact), rel=1e-14)


def test_theorem_b_bracket_uses_the_cluster_mass_and_the_radius_ratio_of_the_grid():
    # an isolated sample at −3 (mass 1/67 < m_min = 0.05 ζ) must be ignored, as the grid's m_min says
    margins = torch.cat([torch.tensor([-3.0], dtype=torch.float64), GRID_MARGINS])
    for ratio in (1.05, 1.5):
        b = theory.certify(margins, 3, radius_ratio=ratio, **ONE_CANDIDATE).theorem_b
        assert (b.eta0, b.zeta, b.min_width) == (1.0, 34 / 67, 0.5)  # h = (1 − (−3))/8
        assert b.min_cluster_mass == 0.05 * (34 / 67)
        documented = theory.condition_b_constant(
            margins,
            2.0,
            max_mass=b.zeta,
            min_width=0.5,
            min_cluster_mass=b.min_cluster_mass,
            window_end=1.0,
            radius_ratio=ratio,
            centre_spacing=0.5 / 8,
        )
        assert (b.kappa_lower, b.kappa_upper) == (documented.lower, documented.upper)
        assert b.kappa_upper > 1.0  # with m_min = 0 the isolated sample would give κ_hi = 1
    coarse = theory.certify(margins, 3, radius_ratio=1.5, **ONE_CANDIDATE).theorem_b
    fine = theory.certify(margins, 3, **ONE_CANDIDATE).theorem_b
    assert (coarse.kappa_lower, coarse.kappa_upper) != (fine.kappa_lower, fine.kappa_upper)


def test_grid_boundary_values_are_accepted():
    grid = theory.CertificateGrid(centre_spacing_fraction=1.0, partition_size=1, search_partition_size=1)
    assert (grid.centre_spacing_fraction, grid.partition_size, grid.search_partition_size) == (1.0, 1, 1)
    report = theory.certify(
        GRID_MARGINS,
        3,
        zetas=(0.5,),
        tau_fractions=(0.25,),
        gammas=(1.0,),
        centre_spacing_fraction=1.0,
        partition_size=1,
        search_partition_size=1,
    )
    assert 0.0 <= report.theorem_a.floor <= 1.0 and 0.0 <= report.theorem_b.floor <= 1.0


def test_mass_etas_are_compared_in_float64():
    # float32(0.7) < 0.7: a float32 threshold would count the margin 0.7 as above it
    margins = torch.tensor([0.7, -0.7, 0.1, 2.0], dtype=torch.float64)
    report = theory.certify(margins, 3, mass_etas=(0.7, 0.1), **ONE_CANDIDATE)
    assert report.good_masses == (0.25, 0.5)  # δ > 0.7: only 2; δ > 0.1: 0.7 and 2
    assert report.bad_masses == (0.0, 0.25)  # δ < −0.7: none; δ < −0.1: −0.7


# =====================================================================================================================
# From test_mutation_kills_search.py — The batched pieces of `certify`'s Theorem A search, row by row (issue 16, the mutation re-run of issue 15's
# speed changes; see TESTING.md).
#
# `certify` ranks its Theorem A candidates with `floors.theorem_a_bounds` on many rows at once (partitions
# and slope integrals shared per window, one scalar exponent per distinct ``γ``) and then recomputes the winner
# alone, so a batch that mixes rows up only changes the ranking: the floors stay valid and the older tests, which
# check floors against independent integrals, still pass. Here each batched result must equal the same function
# on that row alone, and `condition_a_constants` / `condition_a_envelope_values` (public) must follow their
# definitions for ranges that hold no ``λ_k`` and for rows of different exponents.
# =====================================================================================================================


MARGINS = torch.tensor([0.5, 1.0, 1.5, 3.0], dtype=torch.float64)


def test_a_range_below_every_lambda_has_constant_zero_beside_one_that_holds_some() -> None:
    """``λ_k = δ_k + η = 1, 1.5, 2, 3.5`` (η = 0.5): ``C_A(λ0 = 0.75) = 0`` (no ``λ_k ≤ λ0``), and for
    ``λ0 = 2``, ``γ = 1``: ``max(1/4 / 1, 2/4 / 1.5, 3/4 / 2) = 3/8``; ``γ = 2``: ``max(1/4, 2/9, 3/16) = 1/4``."""
    sorted_margins = theory.SortedMargins(MARGINS)
    gammas = torch.tensor([1.0, 2.0], dtype=torch.float64)
    constants = condition_a_constants(sorted_margins, 0.5, gammas, torch.tensor([0.75, 2.0], dtype=torch.float64))
    assert constants.tolist() == [[0.0, 0.0], [0.375, 0.25]]


def test_envelope_rows_with_different_exponents_follow_the_definition() -> None:
    """``U_A(λ) = min(ζ, C λ^γ)`` on ``λ ≤ λ0``, ``ζ`` beyond, each row with its own ``C, γ, λ0, ζ``."""
    lam = torch.tensor([[0.0, 0.5, 1.0, 2.0, 3.0]] * 3, dtype=torch.float64)
    constant = torch.tensor([0.25, 0.25, 2.0], dtype=torch.float64)
    gamma = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    lam0 = torch.tensor([2.5, 2.5, 1.0], dtype=torch.float64)
    zeta = torch.tensor([0.5, 0.5, 0.75], dtype=torch.float64)
    got = condition_a_envelope_values(lam, constant, gamma, lam0, zeta)
    expected = [
        [min(z, c * x**g) if x <= l0 else z for x in row]
        for row, c, g, l0, z in zip(lam.tolist(), constant.tolist(), gamma.tolist(), lam0.tolist(), zeta.tolist())
    ]
    assert got.tolist() == expected
    # a [1, M] row of parameters against several rows of λ: broadcast, one exponent for all
    single = condition_a_envelope_values(lam[:2], constant[:1], gamma[1:2], lam0[:1], zeta[:1])
    assert single.tolist() == [[min(0.5, 0.25 * x**2) for x in row] for row in lam[:2].tolist()]


def test_batched_theorem_a_bounds_equal_each_row_alone() -> None:
    """Rows of two windows and three exponents in one batch give, row for row, the bound of that row alone."""
    rows = []
    for eta, eta0 in ((0.5, 2.0), (0.25, 1.25)):
        for gamma, constant in ((0.5, 0.3), (1.0, 0.375), (2.0, 0.25)):
            zeta = float(theory.SortedMargins(MARGINS).cdf(torch.tensor([eta0], dtype=torch.float64))[0])
            rows.append(
                dict(eta=eta, eta0=eta0, zeta=zeta, gamma=gamma, lam0=eta + eta0, condition_a_constant=constant)
            )
    # and one row whose λ0 lies inside (0, D): its own partition is split at λ0, the others' stay uniform
    rows.append(dict(rows[0], lam0=1.25, condition_a_constant=0.375, gamma=1.0))
    batched = floors.theorem_a_bounds(rows, 3, 64)
    alone = [float(floors.theorem_a_bounds([row], 3, 64)[0]) for row in rows]
    assert batched.shape == (len(rows),)
    assert batched.tolist() == alone
    assert len(set(alone)) == len(alone) and all(math.isfinite(bound) for bound in alone)


def test_batched_upper_sums_equal_each_row_alone() -> None:
    """`envelope.upper_sums` (Theorem B's search ranks its candidates with it) sums each row by itself."""
    from lightning_stability.theory.envelope import upper_sums

    partition = torch.tensor([[0.0, 0.5, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    values = torch.tensor([[0.1, 0.2, 0.3], [0.05, 0.4, 0.4]], dtype=torch.float64)
    eta = torch.tensor([0.5, 1.0], dtype=torch.float64)
    eta0 = torch.tensor([1.5, 2.0], dtype=torch.float64)
    batched = upper_sums(values, partition, eta, eta0, 4)
    alone = [
        float(upper_sums(values[i : i + 1], partition[i : i + 1], eta[i : i + 1], eta0[i : i + 1], 4)[0])
        for i in (0, 1)
    ]
    assert batched.tolist() == alone and alone[0] != alone[1]


def test_exact_dilations_of_radii_near_the_largest_floats_stay_exact() -> None:
    """Radii above 2^1024 / 2^27 ≈ 1.3e300 would overflow the splitting of the error-free product: they take the rational path."""
    from fractions import Fraction

    from lightning_stability.theory import condition_b

    radii = [1.5e300, 4e300]
    scaled, errors, caps = condition_b._exact_dilations(radii, 3.0, math.inf)
    for index, radius in enumerate(radii):
        assert Fraction(float(scaled[index])) + Fraction(float(errors[index])) == 3 * Fraction(radius)
    assert bool(torch.isfinite(errors).all()) and caps.tolist() == [math.inf, math.inf]
