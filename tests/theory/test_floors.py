"""Tests of ``lightning_stability/theory/floors.py`` (docs/theory.md §4–§6): ``theorem_a_floor`` and
``theorem_b_floor`` field by field against the oracles, and the tests of the mutation campaign (issue 16, recorded in
TESTING.md) that pin Theorem A's upper sum on its documented partition and Theorem B's defaults — each part headed by
the file it came from.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath as mp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.exact_oracles import (
    lattice_kappa_b,
)
from tests.theory.oracles import (
    brute_condition_a,
    brute_kappa,
    dyadic_weights,
    exact_weights,
    fK_mp,
    naive_cdf,
    naive_loss_bounds,
    naive_loss_floor,
    phi_trivial_closed_form,
    phi_u_a_exact,
    phi_u_b_exact,
)

SEEDS = st.integers(0, 2**32 - 1)


# =====================================================================================================================
# From test_theorems.py — §5 Theorem A and §6 Theorem B floors: every field against the oracles.
# =====================================================================================================================


LOG2 = math.log(2.0)


def random_margins(rng, n):
    kind = rng.random()
    if kind < 0.4:
        d = rng.normal(2.0, 1.5, size=n)
    elif kind < 0.7:
        d = rng.integers(-8, 40, size=n) / 8.0
    else:  # mostly well classified with a few bad ones (Example 2.1 regime)
        d = np.concatenate([rng.normal(4.0, 1.0, size=n - 2), rng.normal(-3.0, 0.5, size=2)])
    return torch.tensor(d, dtype=torch.float64)


def random_w(rng, n):
    r = rng.random()
    if r < 0.4:
        return None
    if r < 0.7:
        return torch.tensor(dyadic_weights(rng, n, total=64, allow_zero=False))
    return torch.tensor(rng.uniform(0.1, 2.0, size=n))


def exact_zeta(d, eta0, w):
    mu = exact_weights(w, len(d))
    return sum((m for m, x in zip(mu, d.tolist()) if x <= eta0), Fraction(0))


def clip01(x):
    return min(1.0, max(0.0, x))


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.sampled_from([2, 3, 10]), st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0]))
def test_theorem_a_floor(seed, K, gamma):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 25))
    d = random_margins(rng, n)
    w = random_w(rng, n)
    eta = float(-d.min()) + float(rng.choice([1e-3, 0.1, 0.5, 1.5]))
    eta0 = float(np.quantile(d.numpy(), rng.uniform(0.05, 0.95)))
    if eta0 <= -eta:
        eta0 = -eta + 0.25
    D = eta + eta0
    lam0 = None if rng.random() < 0.6 else float(rng.uniform(0.1, 1.0)) * D
    res = theory.theorem_a_floor(d, K, eta, eta0, gamma, lam0=lam0, weights=w)
    assert res.eta == eta and res.eta0 == eta0 and res.gamma == gamma
    L0 = D if lam0 is None else lam0
    assert res.lam0 == pytest.approx(L0, rel=1e-15)
    zeta = naive_cdf(d, eta0, w)
    assert res.zeta == pytest.approx(zeta, abs=1e-12)
    C = brute_condition_a(d, eta, gamma, L0, w)
    assert res.condition_a_constant == pytest.approx(C, rel=1e-12, abs=1e-300)
    exact = phi_u_a_exact(C, gamma, L0, zeta, eta, eta0, K)
    assert exact * (1 - 1e-12) <= res.envelope_bound <= exact * (1 + 1e-3)
    _, upper = naive_loss_bounds(d, K, w)
    assert res.envelope_bound >= upper * (1 - 1e-12)  # Lemma 2
    assert res.floor == pytest.approx(clip01(1 - res.envelope_bound / LOG2), abs=1e-12)
    assert 0.0 <= res.floor <= naive_loss_floor(upper) + 1e-12


def test_theorem_a_floor_when_bad_set_not_empty():
    """docs/theory.md §5: Theorem A assumes ``B_η = ∅`` (and §7 builds every candidate with ``η ≥ −min δ``);
    ``theorem_a_floor``'s docstring: "Requires ``B_η = ∅`` (``min δ ≥ −η``)". A positive-weight margin
    below ``−η`` is therefore a caller error: a ValueError naming the bad set, never a silent floor.
    The same holds for Theorem B. On the boundary ``min δ = −η`` the bad set (``δ < −η``) is empty, so
    the call is valid; there ``λ_k = 0``, ``C_A = +∞`` (§5) and ``U_A = ζ`` on ``(0, D]``: the trivial
    envelope, whose ``Φ`` has the closed form ``(1 − ζ) f_K(η0) + ζ f_K(−η)`` (§4)."""
    d = torch.tensor([-2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="bad set"):
        theory.theorem_a_floor(d, 3, 1.0, 3.5, 1.0)
    with pytest.raises(ValueError, match="bad set"):
        theory.theorem_b_floor(d, 3, 1.0, 3.5)

    # boundary: min δ = −η exactly
    d = torch.tensor([-1.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    res = theory.theorem_a_floor(d, 3, 1.0, 3.5, 1.0)
    assert res.condition_a_constant == math.inf
    assert res.zeta == 0.5
    trivial = phi_trivial_closed_form(0.5, 1.0, 3.5, 3)
    assert res.envelope_bound == pytest.approx(trivial, rel=1e-12)
    assert res.floor == pytest.approx(clip01(1 - trivial / LOG2), abs=1e-12)
    _, upper = naive_loss_bounds(d, 3)
    assert 0.0 <= res.floor <= naive_loss_floor(upper) + 1e-12

    # a margin below −η with weight zero carries no mass: B_η is empty and C_A is finite
    w = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    d = torch.tensor([-5.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    res = theory.theorem_a_floor(d, 3, 1.0, 3.5, 1.0, weights=w)
    assert res.condition_a_constant == pytest.approx(brute_condition_a(d, 1.0, 1.0, 4.5, w), rel=1e-12)
    assert math.isfinite(res.condition_a_constant)


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.sampled_from([2, 3, 10]))
def test_theorem_b_floor(seed, K):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))  # O(N^4) oracle
    d = random_margins(rng, n)
    w = random_w(rng, n)
    eta = float(-d.min()) + float(rng.choice([1e-3, 0.1, 0.5, 1.5]))
    eta0 = float(np.quantile(d.numpy(), rng.uniform(0.1, 0.95)))
    if eta0 <= -eta:
        eta0 = -eta + 0.25
    D = eta + eta0
    Lam = float(rng.choice([2.0, float(rng.uniform(1.2, 3.0))]))
    h = float(rng.uniform(0.01, 0.4)) * D
    zeta_f = naive_cdf(d, eta0, w)
    assert zeta_f > 0
    m_min = float(rng.choice([0.0, float(rng.uniform(0.0, zeta_f))]))
    kw = {}
    if rng.random() < 0.3:
        kw["centre_spacing"] = float(rng.uniform(0.05, 1.0)) * h  # the package requires <= h
    if rng.random() < 0.3:
        kw["radius_ratio"] = 1.2
    res = theory.theorem_b_floor(d, K, eta, eta0, dilation=Lam, min_width=h, min_cluster_mass=m_min, weights=w, **kw)
    assert res.eta == eta and res.eta0 == eta0 and res.dilation == Lam
    assert res.min_width == h and res.min_cluster_mass == m_min
    assert res.zeta == pytest.approx(zeta_f, abs=1e-12)
    zeta_x = exact_zeta(d, eta0, w)
    assert res.max_mass >= float(zeta_x) * (1 - 1e-12)  # Lemma 3 needs m >= zeta
    cb = theory.condition_b_constant(d, Lam, res.max_mass, h, min_cluster_mass=m_min, window_end=eta0, weights=w, **kw)
    assert res.kappa_lower == pytest.approx(cb.lower, rel=1e-12)
    assert res.kappa_upper == pytest.approx(cb.upper, rel=1e-12)
    # validity of the certified kappa for Lemma 3: kappa_lo <= kappa_B for a cap m >= exact
    # zeta.  The cap is max(reported max_mass, exact zeta): a float zeta may sit 1 ulp
    # below the exact mass, and Lemma 3 needs the cap at least the exact zeta.
    cap = max(Fraction(float(res.max_mass)), zeta_x)
    kB, arg = brute_kappa(d, Lam, cap, h, m_min, eta0, w)
    assert res.kappa_lower <= kB * (1 + 1e-9), (kB, arg, res)
    assert kB <= res.kappa_upper * (1 + 1e-9), (kB, arg, res)
    # envelope bound = Phi(U_B) with kappa = kappa_lo (rigorous upper sum)
    exact = phi_u_b_exact(res.kappa_lower, Lam, res.zeta, m_min, h, eta, eta0, K)
    assert exact * (1 - 1e-12) <= res.envelope_bound <= exact * (1 + 1e-3)
    _, upper = naive_loss_bounds(d, K, w)
    assert res.envelope_bound >= upper * (1 - 1e-12)  # Lemma 2
    assert res.floor == pytest.approx(clip01(1 - res.envelope_bound / LOG2), abs=1e-12)
    assert 0.0 <= res.floor <= naive_loss_floor(upper) + 1e-12


def test_theorem_b_floor_defaults():
    torch.manual_seed(0)
    d = torch.randn(40, dtype=torch.float64) + 3.0
    eta = float(-d.min()) + 0.1
    eta0 = float(d.quantile(0.3))
    res = theory.theorem_b_floor(d, 10, eta, eta0)
    assert res.dilation == 2.0
    _, upper = naive_loss_bounds(d, 10)
    assert 0.0 <= res.floor <= naive_loss_floor(upper) + 1e-12
    assert res.kappa_lower <= res.kappa_upper


# =====================================================================================================================
# From test_mutation_kills_theorem_a.py — Theorem A's upper sum on the documented partition, recomputed in 50-digit arithmetic (issue 16).
#
# `theorem_a_floor` bounds ``Φ(U_A)`` by the §4 upper sum ``f_K(η0) + Σ_i U(a_{i+1}) (f_K(a_i − η) − f_K(a_{i+1} − η))``
# on a partition of ``[0, D]`` that is uniform, or — when ``λ0`` lies inside ``(0, D)`` — uniform on ``[0, λ0]``
# with ``round(M λ0 / D)`` pieces (at least 1, at most ``M − 1``) and uniform on ``[λ0, D]`` with the rest
# (`floors.uniform_partitions`). The mutation run found that no test pinned this partition: older tests
# only bracket the bound between Riemann sums. Here the partition points are exact fractions, ``U_A`` is
# evaluated by hand and the sum is taken with mpmath; the package must agree to 1e-13.
#
# Margins 0.5, 1, 1.5, 3 with ``η = 1/2``, ``η0 = 2``: ``λ_k = 1, 3/2, 2, 7/2``, ``ζ = F(2) = 3/4`` and, for
# ``γ = 1`` and any ``λ0 ≥ 2``, ``C_A = max(1/4 / 1, 2/4 / (3/2), 3/4 / 2) = 3/8``, so ``U_A(λ) = min(3/4, 3λ/8)``.
# =====================================================================================================================


MARGINS = torch.tensor([0.5, 1.0, 1.5, 3.0], dtype=torch.float64)
ETA, ETA0, K = Fraction(1, 2), Fraction(2), 3
SPAN = ETA + ETA0  # D = 5/2
ZETA, C = Fraction(3, 4), Fraction(3, 8)


def mpq(x: Fraction) -> mp.mpf:
    return mp.mpf(x.numerator) / x.denominator


def u_a(lam: Fraction, lam0: Fraction, constant: Fraction) -> Fraction:
    return min(ZETA, constant * lam) if lam <= lam0 else ZETA


def upper_sum(points: list[Fraction], lam0: Fraction, constant: Fraction = C) -> float:
    total = fK_mp(mpq(ETA0), K)
    for left, right in zip(points[:-1], points[1:]):
        total += mpq(u_a(right, lam0, constant)) * (fK_mp(mpq(left - ETA), K) - fK_mp(mpq(right - ETA), K))
    return float(total)


@pytest.mark.parametrize("pieces", [1, 3, 5, 7])
def test_uniform_partition_when_lambda0_is_the_window(pieces):
    floor = theory.theorem_a_floor(MARGINS, K, float(ETA), float(ETA0), 1.0, partition_size=pieces)
    assert (floor.zeta, floor.condition_a_constant, floor.lam0) == (0.75, 0.375, 2.5)
    points = [SPAN * i / pieces for i in range(pieces + 1)]
    assert floor.envelope_bound == pytest.approx(upper_sum(points, SPAN), rel=1e-13)
    # a λ0 beyond the window is the same uniform partition (U_A = min(ζ, Cλ) on all of [0, D])
    beyond = theory.theorem_a_floor(MARGINS, K, float(ETA), float(ETA0), 1.0, lam0=3.0, partition_size=pieces)
    assert beyond.envelope_bound == pytest.approx(upper_sum(points, Fraction(3)), rel=1e-13)


@pytest.mark.parametrize(
    "lam0,pieces,left",
    [
        (Fraction(9, 4), 4, 3),  # round(4 · 0.9) = 4 is clamped to M − 1 = 3: λ0 stays a partition point
        (Fraction(5, 4), 4, 2),  # round(4 · 0.5) = 2
        (Fraction(1, 8), 4, 1),  # round(0.2) = 0 is clamped to 1
        (Fraction(9, 4), 3, 2),  # round(2.7) = 3 -> 2
        (Fraction(3, 2), 2, 1),  # two pieces: [0, λ0] and [λ0, D] (not the uniform [0, 5/4, 5/2])
        (Fraction(1), 3, 1),  # round(1.2) = 1: one piece on [0, 1], where U_A = λ/4 rises (C_A = 1/4)
    ],
)
def test_lambda0_inside_the_window_is_a_partition_point(lam0, pieces, left):
    floor = theory.theorem_a_floor(MARGINS, K, float(ETA), float(ETA0), 1.0, lam0=float(lam0), partition_size=pieces)
    inner = [lam0 * i / left for i in range(left + 1)]
    outer = [lam0 + (SPAN - lam0) * j / (pieces - left) for j in range(1, pieces - left + 1)]
    # C_A = max over λ_k ≤ λ0 of F(−η + λ_k)/λ_k, with F(−η + λ_k) = (k + 1)/4 for λ_k = 1, 3/2, 2
    ratios = [Fraction(k + 1, 4) / lam for k, lam in enumerate([Fraction(1), Fraction(3, 2), Fraction(2)])]
    constant = max([Fraction(0)] + [r for r, lam in zip(ratios, [1, Fraction(3, 2), 2]) if lam <= lam0])
    assert floor.condition_a_constant == float(constant)
    expected = upper_sum(inner + outer, lam0, constant)
    assert floor.envelope_bound == pytest.approx(expected, rel=1e-13)


def test_one_piece_ignores_lambda0():
    floor = theory.theorem_a_floor(MARGINS, K, float(ETA), float(ETA0), 1.0, lam0=1.25, partition_size=1)
    # one piece [0, D], charged U_A(D) = ζ (D > λ0)
    expected = upper_sum([Fraction(0), SPAN], Fraction(5, 4))
    assert floor.envelope_bound == pytest.approx(expected, rel=1e-13)


# =====================================================================================================================
# From test_mutation_kills_theorem_b.py — `theorem_b_floor`'s documented defaults and pass-through parameters (issue 16, see TESTING.md).
#
# Docstring: "resolution ``h`` (default ``(η0 − min δ)/8``) and cluster mass ``m_min`` (default ``ζ/20``)"; when
# ``η0 = min δ`` the first default is zero and ``h = D/8`` is used instead. The mutation run found these
# defaults, and the pass-through of ``radius_ratio``, unchecked. The margins are the dyadic grid
# ``−1 + k/16`` (k = 0..63), so ``ζ``, ``h`` and ``D`` are exact; ``κ_B`` comes from the exact lattice oracle.
# =====================================================================================================================


GRID = torch.tensor([-1 + k / 16 for k in range(64)], dtype=torch.float64)


def test_default_resolution_and_cluster_mass():
    floor = theory.theorem_b_floor(GRID, 3, 1.0, 1.0)
    assert floor.zeta == 33 / 64  # -1, ..., 1: 33 of the 64 margins are <= η0 = 1
    assert floor.min_width == 0.25  # (η0 − min δ)/8 = (1 − (−1))/8
    assert Fraction(floor.min_cluster_mass) == Fraction(0.515625 / 20)  # ζ/20, as float64 computes it
    assert floor.min_cluster_mass == pytest.approx(33 / 1280, rel=1e-15)
    assert floor.max_mass == floor.zeta and floor.dilation == 2.0


def test_default_resolution_when_eta0_is_the_smallest_margin():
    # η0 = min δ = −1 makes (η0 − min δ)/8 zero: h = D/8 = (η + η0)/8 = (1.5 − 1)/8
    floor = theory.theorem_b_floor(GRID, 3, 1.5, -1.0)
    assert floor.min_width == 0.0625
    assert floor.zeta == 1 / 64
    floor = theory.theorem_b_floor(GRID, 3, 3.0, -1.0)
    assert floor.min_width == 0.25  # (3 − 1)/8


def test_explicit_resolution_and_cluster_mass_are_used():
    floor = theory.theorem_b_floor(GRID, 3, 1.0, 1.0, min_width=0.5, min_cluster_mass=0.125)
    assert (floor.min_width, floor.min_cluster_mass) == (0.5, 0.125)


@pytest.mark.parametrize("radius_ratio", [1.05, 1.9])
def test_kappa_bracket_uses_the_given_radius_ratio_and_contains_the_exact_kappa(radius_ratio):
    floor = theory.theorem_b_floor(GRID, 3, 1.0, 1.0, radius_ratio=radius_ratio)
    exact, _ = lattice_kappa_b(GRID, 2.0, Fraction(33, 64), floor.min_width, floor.min_cluster_mass, window_end=1.0)
    assert exact == 4 / 3
    assert floor.kappa_lower <= exact <= floor.kappa_upper
    bracket = theory.condition_b_constant(
        GRID,
        2.0,
        max_mass=floor.zeta,
        min_width=floor.min_width,
        min_cluster_mass=floor.min_cluster_mass,
        window_end=1.0,
        radius_ratio=radius_ratio,
    )
    assert (floor.kappa_lower, floor.kappa_upper) == (bracket.lower, bracket.upper)


def test_a_coarser_radius_grid_gives_a_looser_bracket():
    fine = theory.theorem_b_floor(GRID, 3, 1.0, 1.0)
    coarse = theory.theorem_b_floor(GRID, 3, 1.0, 1.0, radius_ratio=1.9)
    assert coarse.kappa_lower < fine.kappa_lower  # 1.0 < 1.2 on this grid
    assert fine.kappa_lower == pytest.approx(1.2, rel=1e-11)
