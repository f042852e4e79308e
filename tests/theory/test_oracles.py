"""Self-checks of the brute-force oracles (no lightning_stability import).

If one of these fails, the oracle is wrong, not the package."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from tests.theory.oracles import (
    brute_condition_a,
    brute_kappa,
    dyadic_weights,
    empirical_F_pieces,
    exact_weights,
    fK,
    g,
    grid_sup_condition_a,
    naive_cross_entropy,
    naive_margins,
    phi_step_exact,
    phi_trivial_closed_form,
    phi_u_a_exact,
    phi_u_b_exact,
    phiK,
    u_a_scalar,
    u_b_breakpoints,
    u_b_scalar,
)

SEEDS = st.integers(0, 2**32 - 1)


def _exact_ratio(V, mu, c, r, Lam):
    nI = sum((m for v, m in zip(V, mu) if c - r <= v <= c + r), Fraction(0))
    nL = sum((m for v, m in zip(V, mu) if c - Lam * r <= v <= c + Lam * r), Fraction(0))
    return nI, nL


@settings(max_examples=25, deadline=None)
@given(SEEDS)
def test_brute_kappa_is_a_true_minimum(seed):
    """No admissible interval found by random search (continuous and near-critical)
    beats the exhaustive enumeration, and the enumeration's arg-min is admissible."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 8))
    if rng.random() < 0.5:
        vals = rng.integers(-24, 24, size=n) / 8.0
        Lam = float(rng.integers(40, 96)) / 32.0
    else:
        vals = rng.normal(size=n)
        Lam = float(rng.uniform(1.2, 3.0))
    w = dyadic_weights(rng, n, total=16)
    h = float(rng.integers(1, 12)) / 16.0
    m = float(rng.integers(1, 17)) / 16.0
    mmin = float(rng.integers(0, int(m * 16) + 1)) / 16.0
    wend = math.inf if rng.random() < 0.5 else float(rng.integers(-16, 32)) / 8.0
    kappa, cr = brute_kappa(vals, Lam, m, h, mmin, wend, torch.tensor(w))

    V = [Fraction(float(v)) for v in vals]
    mu = exact_weights(torch.tensor(w), n)
    L = Fraction(Lam)

    def admissible(c, r):
        if r < Fraction(h) / 2:
            return None
        if not math.isinf(wend) and c + L * r > Fraction(wend):
            return None
        nI, nL = _exact_ratio(V, mu, c, r, L)
        if nI <= 0 or nI < Fraction(mmin) or nL > Fraction(m):
            return None
        return nL / nI

    if cr is not None:
        ratio = admissible(*cr)
        assert ratio is not None and float(ratio) == pytest.approx(kappa, rel=1e-15)
    # candidate building blocks for adversarial search
    for _ in range(400):
        kind = rng.integers(0, 3)
        if kind == 0:
            c = Fraction(float(rng.uniform(-4, 4)))
            r = Fraction(float(rng.uniform(h / 2, 6)))
        else:
            i, j = rng.integers(0, n, size=2)
            denom = [Fraction(2), 2 * L, L + 1, L - 1][rng.integers(0, 4)]
            r = abs(V[i] - V[j]) / denom
            r = max(r, Fraction(h) / 2)
            if kind == 2:
                r = r * (1 + Fraction(int(rng.integers(-3, 4)), 10**6))
            k = rng.integers(0, n)
            off = [r, -r, L * r, -L * r][rng.integers(0, 4)]
            c = V[k] + off + Fraction(int(rng.integers(-1, 2)), 10**7)
        ratio = admissible(c, r)
        if ratio is not None:
            assert kappa <= float(ratio) * (1 + 1e-12), (c, r, ratio, kappa)


@settings(max_examples=30, deadline=None)
@given(SEEDS)
def test_brute_condition_a_vs_grid(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    d = rng.integers(-8, 40, size=n) / 8.0
    eta = float(rng.integers(9, 24)) / 8.0
    gamma = float(rng.choice([0.5, 1.0, 2.0, 3.0]))
    lam0 = float(rng.integers(1, 60)) / 8.0
    w = torch.tensor(dyadic_weights(rng, n, total=16))
    ca = brute_condition_a(d, eta, gamma, lam0, w)
    gs = grid_sup_condition_a(d, eta, gamma, lam0, w)
    assert gs <= ca * (1 + 1e-12)
    assert gs == pytest.approx(ca, rel=1e-9)


def test_phi_of_empirical_F_is_the_f_sum():
    """Lemma 2's identity: Phi(F) = sum_{delta<=eta0} mu f_K(delta) + (1-zeta) f_K(eta0)."""
    rng = np.random.default_rng(1)
    for K in (2, 3, 10):
        d = rng.normal(1.0, 1.5, size=20)
        eta = -d.min() + 0.3
        eta0 = float(np.quantile(d, 0.4))
        mu = np.array([float(m) for m in exact_weights(None, 20)])
        zeta = mu[d <= eta0].sum()
        lhs = phi_step_exact(empirical_F_pieces(d, eta, eta0), eta, eta0, K)
        rhs = sum(m * fK(x, K) for m, x in zip(mu, d) if x <= eta0) + (1 - zeta) * fK(eta0, K)
        assert lhs == pytest.approx(rhs, rel=1e-12)
        assert rhs >= sum(m * fK(x, K) for m, x in zip(mu, d)) - 1e-12


def test_phi_exact_vs_scipy_quad():
    for K, eta, eta0 in [(2, 0.5, 2.0), (10, 1.0, 3.0), (3, 0.1, 0.7)]:
        D = eta + eta0
        zeta = 0.3
        for C, gamma, lam0 in [(0.2, 1.0, D), (5.0, 0.5, D / 2), (0.01, 8.0, D), (0.0, 2.0, D)]:
            U = lambda l: u_a_scalar(l, C, gamma, lam0, zeta)
            pts = [lam0] + ([(zeta / C) ** (1 / gamma)] if C > 0 else [])
            pts = [p for p in pts if 0 < p < D]
            q = integrate.quad(
                lambda l: U(l) * phiK(l - eta, K), 0, D, points=pts or None, epsabs=1e-14, epsrel=1e-13, limit=500
            )[0]
            assert phi_u_a_exact(C, gamma, lam0, zeta, eta, eta0, K) == pytest.approx(fK(eta0, K) + q, rel=1e-9)
        for kappa, Lam, mmin, h in [(1.5, 2.0, 0.01, 0.1), (3.0, 1.3, 0.0, 0.05), (math.inf, 2.5, 0.02, 0.3)]:
            U = lambda l: u_b_scalar(l, kappa, Lam, zeta, mmin, h, D)
            pts = [p for p in u_b_breakpoints(Lam, h, D) if 0 < p < D]
            q = integrate.quad(
                lambda l: U(l) * phiK(l - eta, K), 0, D, points=pts or None, epsabs=1e-14, epsrel=1e-13, limit=500
            )[0]
            assert phi_u_b_exact(kappa, Lam, zeta, mmin, h, eta, eta0, K) == pytest.approx(fK(eta0, K) + q, rel=1e-9)
        assert phi_step_exact([(0, D, zeta)], eta, eta0, K) == pytest.approx(
            phi_trivial_closed_form(zeta, eta, eta0, K), rel=1e-14
        )


def test_naive_ce_and_margins_vs_torch():
    torch.manual_seed(0)
    z = torch.randn(30, 5, dtype=torch.float64) * 3
    y = torch.randint(0, 5, (30,))
    ce = torch.nn.functional.cross_entropy(z, y, reduction="none")
    assert np.allclose(naive_cross_entropy(z, y), ce.numpy(), rtol=1e-12, atol=1e-14)
    other = z.clone()
    other[torch.arange(30), y] = -math.inf
    ref = z[torch.arange(30), y] - other.max(dim=1).values
    assert naive_margins(z, y) == ref.tolist()
    for d in (-30.0, -1.0, 0.0, 2.0, 40.0):
        assert g(d) == pytest.approx(math.log1p(math.exp(-d)), rel=1e-12)
        assert fK(d, 2) == pytest.approx(g(d), rel=1e-15)
