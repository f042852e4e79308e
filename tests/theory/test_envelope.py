"""Tests of ``lightning_stability/theory/envelope.py`` (docs/theory.md §4–§6): §4 Lemma 2 / the rigorous quadrature
Phi(U), and the envelopes U_A (§5), U_B (§6); the last part holds the tests of the mutation campaign (issue 16,
recorded in TESTING.md)."""

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
from tests.theory.oracles import (
    brute_condition_a,
    empirical_F_of_lambda,
    empirical_F_pieces,
    exact_weights,
    fK,
    fK_mp,
    phi_step_exact,
    phi_trivial_closed_form,
    phi_u_a_exact,
    phi_u_b_exact,
    robust_J,
    u_a_scalar,
    u_b_breakpoints,
    u_b_scalar,
    u_b_vec,
)

SEEDS = st.integers(0, 2**32 - 1)
REL = 1e-3  # required accuracy of the default partition (4096)


def _as_np(t):
    if isinstance(t, torch.Tensor):
        return t.detach().to(torch.float64).cpu().numpy()
    return np.asarray(t, dtype=np.float64)


def my_u_a(C, gamma, lam0, zeta):
    def U(lam):
        out = [u_a_scalar(float(x), C, gamma, lam0, zeta) for x in lam.tolist()]
        return torch.tensor(out, dtype=torch.float64)

    return U


def my_u_b(kappa, dilation, zeta, m_min, h, D):
    def U(lam):
        return torch.tensor(u_b_vec(lam.numpy(), kappa, dilation, zeta, m_min, h, D), dtype=torch.float64)

    return U


def my_const(zeta):
    return lambda lam: torch.full_like(lam, zeta, dtype=torch.float64)


def my_empirical(margins, eta, weights=None):
    d = torch.as_tensor(margins, dtype=torch.float64)
    mu = torch.tensor([float(m) for m in exact_weights(weights, len(d))], dtype=torch.float64)

    def U(lam):
        lam = lam.to(torch.float64)
        lam_k = d + eta  # float64 lambda_k, as in the oracles
        return ((lam_k[None, :] <= lam[:, None]).to(torch.float64) * mu[None, :]).sum(1)

    return U


def params(rng):
    K = int(rng.choice([2, 3, 10]))
    eta = float(rng.uniform(0.05, 2.0))
    eta0 = float(rng.uniform(0.2, 3.0))
    zeta = float(rng.uniform(0.01, 0.5))
    return K, eta, eta0, zeta


def _check_phi(U, exact, eta, eta0, K, **kw):
    val = theory.envelope_loss_bound(U, eta, eta0, K, **kw)
    assert isinstance(val, float)
    assert val >= exact * (1 - 1e-12)  # a rigorous upper sum
    assert val <= exact * (1 + REL)
    return val


@settings(max_examples=30, deadline=None)
@given(SEEDS)
def test_phi_trivial_envelope(seed):
    rng = np.random.default_rng(seed)
    K, eta, eta0, zeta = params(rng)
    exact = phi_trivial_closed_form(zeta, eta, eta0, K)
    assert exact == pytest.approx(phi_step_exact([(0.0, eta + eta0, zeta)], eta, eta0, K), rel=1e-13)
    _check_phi(my_const(zeta), exact, eta, eta0, K)
    # U == 0: Phi = f_K(eta0) (up to nothing)
    v0 = theory.envelope_loss_bound(my_const(0.0), eta, eta0, K)
    assert v0 == pytest.approx(fK(eta0, K), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0]))
def test_phi_u_a(seed, gamma):
    rng = np.random.default_rng(seed)
    K, eta, eta0, zeta = params(rng)
    D = eta + eta0
    C = float(10 ** rng.uniform(-2, 2))
    lam0 = D if rng.random() < 0.5 else float(rng.uniform(0.1, 1.0)) * D
    exact = phi_u_a_exact(C, gamma, lam0, zeta, eta, eta0, K)
    v_mine = _check_phi(my_u_a(C, gamma, lam0, zeta), exact, eta, eta0, K)
    UA = theory.condition_a_envelope(C, gamma, lam0, zeta)
    lam = torch.linspace(0.0, D, 2001, dtype=torch.float64)[1:]
    got = _as_np(UA(lam))
    ref = np.array([u_a_scalar(float(x), C, gamma, lam0, zeta) for x in lam.tolist()])
    assert np.allclose(got, ref, rtol=1e-12, atol=1e-15)
    v_pkg = _check_phi(UA, exact, eta, eta0, K)
    assert v_pkg == pytest.approx(v_mine, rel=1e-12)
    # refinement of the (nested uniform) partition can only tighten an upper sum
    v_fine = theory.envelope_loss_bound(UA, eta, eta0, K, partition_size=16384)
    assert exact * (1 - 1e-12) <= v_fine <= v_pkg * (1 + 1e-12)
    assert v_fine <= exact * (1 + REL / 3)


@settings(max_examples=30, deadline=None)
@given(SEEDS)
def test_phi_u_b(seed):
    rng = np.random.default_rng(seed)
    K, eta, eta0, zeta = params(rng)
    D = eta + eta0
    kappa = float(rng.choice([float(rng.uniform(1.0, 5.0)), math.inf, 1.0]))
    Lam = float(rng.uniform(1.2, 3.0))
    m_min = float(rng.uniform(0.0, zeta)) if rng.random() < 0.7 else 0.0
    h = float(rng.uniform(0.01, D))
    exact = phi_u_b_exact(kappa, Lam, zeta, m_min, h, eta, eta0, K)
    _check_phi(my_u_b(kappa, Lam, zeta, m_min, h, D), exact, eta, eta0, K)
    UB = theory.condition_b_envelope(kappa, Lam, zeta, m_min, h, D)
    lam = torch.linspace(0.0, D, 1501, dtype=torch.float64)[1:]
    got = _as_np(UB(lam))
    for x, gv in zip(lam.tolist(), got):
        ref = u_b_scalar(x, kappa, Lam, zeta, m_min, h, D)
        xx = max(x, h / 2)
        J = robust_J(x, Lam, h, D)
        near_jump = abs(xx * Lam ** (J + 1) / D - 1) < 1e-9 or abs(xx * Lam**J / D - 1) < 1e-9
        if not near_jump:
            assert gv == pytest.approx(ref, rel=1e-12, abs=1e-15), (x, J)
        else:  # at a jump either side is acceptable, but never below the lower step
            assert gv >= min(ref, u_b_scalar(x * (1 + 1e-7), kappa, Lam, zeta, m_min, h, D)) - 1e-15
    _check_phi(UB, exact, eta, eta0, K)
    bps = [p for p in u_b_breakpoints(Lam, h, D) if 0 < p < D]
    _check_phi(UB, exact, eta, eta0, K, breakpoints=torch.tensor(bps, dtype=torch.float64))


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.sampled_from([2, 3, 10]))
def test_lemma2_and_envelopes_dominate_F(seed, K):
    """Sum mu f_K(delta) <= Phi(U) for every envelope dominating F(-eta + .): the
    empirical F itself, U == zeta, U_A with the exact C_A, U_B with kappa = the
    package's certified kappa_lo (window eta0, cap zeta); and U_A, U_B >= F."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 14))
    if rng.random() < 0.5:
        d = rng.normal(1.0, 1.0, size=n)
    else:
        d = rng.integers(-4, 24, size=n) / 8.0
    d = torch.tensor(d, dtype=torch.float64)
    w = None if rng.random() < 0.5 else torch.tensor(rng.uniform(0.1, 1.0, size=n))
    eta = float(-d.min()) + float(rng.uniform(0.01, 0.8))
    eta0 = float(np.quantile(d.numpy(), rng.uniform(0.2, 0.9)))
    if eta0 <= -eta:
        eta0 = -eta + 0.5
    D = eta + eta0
    mu = np.array([float(m) for m in exact_weights(w, n)])
    dn = d.numpy()
    zeta = float(mu[dn <= eta0].sum())
    # Lemma 3 needs the cap m >= zeta *exactly*; a float zeta may be rounded 1 ulp below
    # the exact mass, so cap and envelope use zeta rounded up (still a valid zeta bound).
    zeta_up = min(1.0, zeta * (1 + 1e-12))
    fsum = float(np.sum(mu * np.array([fK(x, K) for x in dn])))
    lam_grid = np.concatenate([np.linspace(D / 3000, D, 3000), dn + eta, (dn + eta) * (1 + 1e-9)])
    lam_grid = lam_grid[(lam_grid > 0) & (lam_grid <= D)]
    Fgrid = empirical_F_of_lambda(d, eta, lam_grid, w)
    lam_t = torch.tensor(lam_grid, dtype=torch.float64)

    # empirical F: Phi(F) >= sum f_K, and the package's upper sum is above the exact Phi(F)
    exact_F = phi_step_exact(empirical_F_pieces(d, eta, eta0, w), eta, eta0, K)
    assert fsum <= exact_F * (1 + 1e-12)
    assert theory.envelope_loss_bound(my_empirical(d, eta, w), eta, eta0, K) >= exact_F * (1 - 1e-12)
    # trivial envelope
    assert fsum <= theory.envelope_loss_bound(my_const(zeta), eta, eta0, K) * (1 + 1e-12)
    # U_A with exact C_A
    for gamma in (0.5, 1.0, 3.0):
        lam0 = D if rng.random() < 0.6 else float(rng.uniform(0.2, 1.0)) * D
        C = brute_condition_a(d, eta, gamma, lam0, w)
        assert math.isfinite(C)
        UA = theory.condition_a_envelope(C, gamma, lam0, zeta)
        ua = _as_np(UA(lam_t))
        assert np.all(ua >= Fgrid - 1e-12), "U_A below the empirical F"
        assert np.all(ua <= zeta + 1e-15)
        assert fsum <= theory.envelope_loss_bound(UA, eta, eta0, K) * (1 + 1e-12)
    # U_B with the certified kappa_lo
    if zeta > 0:
        Lam = float(rng.uniform(1.2, 3.0))
        h = float(rng.uniform(0.02, 0.5)) * D
        m_min = float(rng.choice([0.0, float(rng.uniform(0.0, zeta))]))
        res = theory.condition_b_constant(d, Lam, zeta_up, h, min_cluster_mass=m_min, window_end=eta0, weights=w)
        UB = theory.condition_b_envelope(res.lower, Lam, zeta_up, m_min, h, D)
        ub = _as_np(UB(lam_t))
        assert np.all(ub >= Fgrid - 1e-12), "U_B below the empirical F"
        assert fsum <= theory.envelope_loss_bound(UB, eta, eta0, K) * (1 + 1e-12)


# =====================================================================================================================
# From test_mutation_kills_envelopes.py — Envelopes, Lemma 2's bound and the window check (issue 16, see TESTING.md).
#
# Gaps the mutation run exposed:
#
# * ``U_A`` / ``U_B`` evaluated at a 1-D tensor of *odd* length (every older caller used an even number of
#   points), checked against the formulas of docs/theory.md §5/§6 by hand;
# * ``ζ = 0`` is a valid envelope height (``check_positive(..., strict=False)``);
# * `envelope_loss_bound` ignores extra breakpoints outside ``(0, D)``;
# * ``−η < η0`` is strict: ``D = η + η0 = 0`` is refused by every entry point.
#
# Expected values come from the closed forms (a constant envelope ``U ≡ ζ`` has
# ``Φ = (1 − ζ) f_K(η0) + ζ f_K(−η)``, tests/theory/oracles.py).
# =====================================================================================================================


LAMBDAS = torch.tensor([0.0, 0.25, 0.5, 1.0, 4.0], dtype=torch.float64)  # five points, one beyond λ0 = 2


def test_condition_a_envelope_on_an_odd_number_of_points():
    envelope = theory.condition_a_envelope(0.5, 2.0, 2.0, 0.25)  # min(ζ, C λ^γ) on λ ≤ λ0, ζ beyond
    # 0.5 λ²: 0, 1/32, 1/8, 1/2 -> capped at 1/4; λ = 4 > λ0: ζ
    assert envelope(LAMBDAS).tolist() == [0.0, 0.03125, 0.125, 0.25, 0.25]
    assert envelope(LAMBDAS[:3]).tolist() == [0.0, 0.03125, 0.125]
    assert envelope(LAMBDAS.reshape(5, 1)).shape == (5, 1)  # the input's shape is kept


def test_condition_b_envelope_on_an_odd_number_of_points():
    # U_B(λ) = min(ζ, max(m_min, ζ κ^{−J(λ)})), J = floor(log_Λ(D / max(λ, h/2))): κ = 2, Λ = 2, ζ = 1/2,
    # m_min = 1/64, h = 1/4, D = 4: J(0) = J(1/8 cap) = 5, J(1/4) = 4, J(1/2) = 3, J(1) = 2, J(4) = 0
    envelope = theory.condition_b_envelope(2.0, 2.0, 0.5, 1 / 64, 0.25, 4.0)
    assert envelope(LAMBDAS).tolist() == [1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 2]
    assert envelope(LAMBDAS.reshape(5, 1)).shape == (5, 1)


@pytest.mark.parametrize(
    "make",
    [
        lambda: theory.condition_a_envelope(3.0, 1.0, 1.0, 0.0),
        lambda: theory.condition_b_envelope(2.0, 2.0, 0.0, 0.0, 0.25, 4.0),
    ],
)
def test_a_zero_height_envelope_is_allowed_and_vanishes(make):
    assert make()(LAMBDAS).tolist() == [0.0] * 5


def test_zero_envelope_bound_is_f_k_of_eta0():
    # U ≡ 0: Φ = f_K(η0) exactly (no integral term); with U ≡ ζ the closed form above
    bound = theory.envelope_loss_bound(theory.condition_a_envelope(0.0, 1.0, 1.0, 0.0), 0.5, 1.5, 3)
    assert bound == pytest.approx(math.log(1 + 2 * math.exp(-1.5)), rel=1e-15)


@pytest.mark.parametrize("outside", [[-1.0, -0.25], [2.0, 3.5], [-1.0, 0.0, 2.0, 7.0]])
def test_breakpoints_outside_the_window_are_ignored(outside):
    eta, eta0, zeta = 0.5, 1.5, 0.25  # D = 2

    def constant(lam):
        return torch.full_like(lam, zeta)

    plain = theory.envelope_loss_bound(constant, eta, eta0, 3, partition_size=16)
    extra = theory.envelope_loss_bound(
        constant, eta, eta0, 3, partition_size=16, breakpoints=torch.tensor(outside, dtype=torch.float64)
    )
    assert extra == plain
    assert plain == pytest.approx(phi_trivial_closed_form(zeta, eta, eta0, 3), rel=1e-12)


def test_breakpoints_inside_the_window_refine_a_step_envelope_to_its_exact_value():
    eta, eta0 = 0.5, 1.5  # D = 2; U = 0 on [0, 0.3], 0.25 beyond: 0.3 is not a point of the uniform grid

    def step(lam):
        return torch.where(lam > 0.3, 0.25, 0.0).to(torch.float64)

    exact = theory.envelope_loss_bound(
        step, eta, eta0, 3, partition_size=4, breakpoints=torch.tensor([0.3], dtype=torch.float64)
    )
    f = lambda d: math.log(1 + 2 * math.exp(-d))  # f_K, K = 3
    assert exact == pytest.approx(f(eta0) + 0.25 * (f(0.3 - eta) - f(2.0 - eta)), rel=1e-14)
    coarse = theory.envelope_loss_bound(step, eta, eta0, 3, partition_size=4)
    assert coarse > exact  # without the breakpoint the piece [0, 0.5] is charged U(0.5) = 0.25


@pytest.mark.parametrize(
    "call",
    [
        lambda: theory.theorem_a_floor(torch.tensor([0.5, 1.0]), 3, 1.0, -1.0, 1.0),
        lambda: theory.theorem_b_floor(torch.tensor([0.5, 1.0]), 3, 1.0, -1.0),
        lambda: theory.theorem_a_floor(torch.tensor([0.5, 1.0]), 3, 0.25, -0.5, 1.0),
        lambda: theory.envelope_loss_bound(torch.zeros_like, 1.0, -1.0, 3),
        lambda: theory.envelope_loss_bound(torch.zeros_like, 0.25, -0.5, 3),
    ],
)
def test_an_empty_window_is_refused(call):
    with pytest.raises(ValueError, match=r"need −eta < eta0"):
        call()


def test_the_bad_set_check_names_the_minimum():
    with pytest.raises(ValueError, match=r"the bad set B_eta is not empty: min margin -2 < −eta = -1"):
        theory.theorem_a_floor(torch.tensor([-2.0, 1.0]), 3, 1.0, 1.0, 1.0)


def test_envelope_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"`envelope` must map a 1-D tensor of λ values to a tensor of the same"):
        theory.envelope_loss_bound(lambda lam: lam[:-1], 1.0, 1.0, 3)


def test_infinite_condition_a_constant_gives_zeta_on_positive_lambda_and_zero_at_zero():
    # C = inf (the bad set is not empty): U_A = ζ on λ > 0, and U_A(0) = 0 (never inf · 0 = nan)
    envelope = theory.condition_a_envelope(math.inf, 1.0, 1.0, 0.5)
    assert envelope(LAMBDAS).tolist() == [0.0, 0.5, 0.5, 0.5, 0.5]
    finite = theory.condition_a_envelope(2.0, 0.5, 1.0, 0.5)
    assert finite(torch.tensor([0.0, 1 / 64], dtype=torch.float64)).tolist() == [0.0, 0.25]  # 2 · (1/64)^{1/2}


def test_one_piece_is_allowed():
    eta, eta0, zeta = 0.5, 1.5, 0.25
    bound = theory.envelope_loss_bound(lambda lam: torch.full_like(lam, zeta), eta, eta0, 3, partition_size=1)
    assert bound == pytest.approx(phi_trivial_closed_form(zeta, eta, eta0, 3), rel=1e-14)


@pytest.mark.parametrize("pieces", [1, 2, 3, 5])
def test_upper_sum_on_the_uniform_partition_of_a_rising_envelope(pieces):
    # U(λ) = λ/4 on [0, D], D = 2: the §4 upper sum Σ U(a_{i+1}) (f_K(a_i − η) − f_K(a_{i+1} − η)) on a_i = D i/M,
    # recomputed with 50-digit f_K; a different number of pieces (or a moved last point) changes it
    eta, eta0 = 0.5, 1.5
    bound = theory.envelope_loss_bound(lambda lam: lam / 4, eta, eta0, 3, partition_size=pieces)
    points = [Fraction(2 * i, pieces) for i in range(pieces + 1)]
    expected = fK_mp(mp.mpf(eta0), 3)
    for left, right in zip(points[:-1], points[1:]):
        expected += (
            mp.mpf(right.numerator)
            / right.denominator
            / 4
            * (
                fK_mp(mp.mpf(left.numerator) / left.denominator - eta, 3)
                - fK_mp(mp.mpf(right.numerator) / right.denominator - eta, 3)
            )
        )
    assert bound == pytest.approx(float(expected), rel=1e-14)
