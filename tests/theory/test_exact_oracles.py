"""Self-checks of ``exact_oracles.py`` against ``oracles.py`` and closed forms (no lightning_stability).

If one of these fails, an oracle is wrong, not the package."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.theory.exact_oracles import (
    as_float,
    envelope_u_a,
    envelope_u_b,
    exact_accuracy,
    exact_cdf,
    exact_condition_a,
    j_of_lambda,
    lattice_kappa_b,
    riemann_phi,
)
from tests.theory.oracles import (
    brute_condition_a,
    brute_kappa,
    mass_where,
    phi_trivial_closed_form,
    phi_u_a_exact,
    phi_u_b_exact,
    robust_J,
    u_a_scalar,
    u_b_scalar,
)


def _t(values):
    return None if values is None else torch.tensor([float(v) for v in values], dtype=torch.float64)


def test_exact_accuracy_and_cdf_hand_values():
    d = _t([0.0, -0.0, 1.0, -1.0])
    assert exact_accuracy(d) == Fraction(1, 4)
    assert exact_accuracy(d, _t([1, 1, 2, 0])) == Fraction(2, 4)
    assert exact_cdf(d, 0.0) == Fraction(3, 4)
    assert exact_cdf(d, Fraction(-1)) == Fraction(1, 4)
    assert float(exact_accuracy(d)) == mass_where(d, lambda x: x > 0)


def test_exact_condition_a_hand_values():
    d = _t([0.0, 1.0, 1.0, 1.0])
    assert exact_condition_a(d, 0.5, 1.0, 1.5) == Fraction(2, 3)
    assert exact_condition_a(d, 0.5, 1.0, 1.25) == Fraction(1, 2)  # λ0 below the tie: only λ = 1/2
    assert exact_condition_a(d, 0.0, 1.0, 1.5) == math.inf  # λ_k = 0
    assert exact_condition_a(d, 0.5, 2.0, 0.25) == 0
    assert as_float(exact_condition_a(d, 0.5, 0.5, 1.5)) == pytest.approx(1 / math.sqrt(1.5), rel=1e-15)


@settings(max_examples=40)
@given(
    st.lists(st.integers(-8, 24), min_size=1, max_size=10),
    st.integers(0, 6),
    st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    st.integers(1, 40),
)
@example([0, 8, 8, 8], 4, 1.0, 12)
def test_exact_condition_a_equals_float_sum_brute_force_on_dyadics(eighths, offset, gamma, lam0_eighths):
    d = _t([x / 8 for x in eighths])
    eta = -float(d.min()) + offset / 8
    lam0 = lam0_eighths / 8
    exact = exact_condition_a(d, eta, gamma, lam0)
    brute = brute_condition_a(d, eta, gamma, lam0)
    if exact == math.inf:
        assert brute == math.inf
    else:
        assert brute == pytest.approx(as_float(exact), rel=1e-14, abs=0.0)


@settings(max_examples=40)
@given(st.integers(0, 2**32 - 1))
def test_lattice_kappa_equals_object_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    vals = rng.integers(-24, 24, size=n) / 8.0 if rng.random() < 0.6 else rng.integers(-300, 300, size=n) / 64.0
    Lam = 2.0 if rng.random() < 0.5 else float(rng.integers(40, 96)) / 32.0
    w = None if rng.random() < 0.3 else rng.integers(0, 4, size=n).astype(np.float64)
    if w is not None and w.sum() == 0:
        w[0] = 1.0
    h = float(rng.integers(1, 12)) / 16.0
    m = float(rng.integers(1, 17)) / 16.0
    m_min = float(rng.integers(0, 5)) / 16.0
    w_end = math.inf if rng.random() < 0.5 else float(rng.integers(-8, 24)) / 8.0
    expected, _ = brute_kappa(vals, Lam, m, h, m_min, w_end, w)
    got, arg = lattice_kappa_b(vals, Lam, m, h, m_min, w_end, w)
    assert got == expected
    if arg is not None:  # the arg-min interval is admissible and attains the value
        c, r = arg
        mu = [Fraction(x) for x in (w if w is not None else np.ones(n))]
        total = sum(mu)
        lam = Fraction(Lam)
        in_I = sum((m_ for v, m_ in zip(vals, mu) if c - r <= Fraction(v) <= c + r), Fraction(0)) / total
        in_L = sum((m_ for v, m_ in zip(vals, mu) if c - lam * r <= Fraction(v) <= c + lam * r), Fraction(0)) / total
        assert r >= Fraction(h) / 2 and in_I > 0 and in_I >= Fraction(m_min) and in_L <= Fraction(m)
        if not math.isinf(w_end):
            assert c + lam * r <= Fraction(w_end)
        assert float(in_L / in_I) == got


def test_j_of_lambda_matches_robust_J():
    for Lam, h, D in ((2.0, 0.3, 5.0), (1.5, 0.01, 3.0), (3.0, 1.0, 2.5)):
        lam = np.concatenate([np.linspace(0, D, 997), D / Lam ** np.arange(8), [h / 2]])
        ours = j_of_lambda(lam, Lam, h, D)
        assert [int(j) for j in ours] == [robust_J(float(x), Lam, h, D) for x in lam]


@pytest.mark.parametrize("K", [2, 3, 10])
def test_riemann_sums_bracket_closed_forms(K):
    eta, eta0, zeta = 0.7, 2.3, 0.2
    lower, upper = riemann_phi(lambda lam: np.full_like(lam, zeta), eta, eta0, K)
    exact = phi_trivial_closed_form(zeta, eta, eta0, K)
    assert lower <= exact <= upper and upper - lower < 1e-4
    for C, gamma, lam0 in ((0.05, 2.0, 3.0), (0.3, 0.5, 1.5), (math.inf, 1.0, 3.0), (0.0, 1.0, 3.0)):
        U = envelope_u_a(C, gamma, lam0, zeta)
        lam = np.linspace(0, 3.0, 301)[1:]
        assert U(lam).tolist() == [u_a_scalar(float(x), C, gamma, lam0, zeta) for x in lam]
        lower, upper = riemann_phi(U, eta, eta0, K)
        exact = (
            phi_u_a_exact(C, gamma, lam0, zeta, eta, eta0, K)
            if math.isfinite(C)
            else phi_trivial_closed_form(zeta, eta, eta0, K)
        )
        assert lower * (1 - 1e-12) <= exact <= upper * (1 + 1e-12)
    for kappa, Lam, m_min, h in (
        (1.3, 2.0, 0.01, 0.2),
        (math.inf, 2.0, 0.0, 0.5),
        (1.0, 1.5, 0.0, 0.1),
        (4.0, 3.0, 0.05, 0.05),
    ):
        D = eta + eta0
        U = envelope_u_b(kappa, Lam, zeta, m_min, h, D)
        lam = np.linspace(0, D, 401)
        assert np.allclose(U(lam), [u_b_scalar(float(x), kappa, Lam, zeta, m_min, h, D) for x in lam], rtol=0, atol=0)
        lower, upper = riemann_phi(U, eta, eta0, K)
        exact = phi_u_b_exact(kappa, Lam, zeta, m_min, h, eta, eta0, K)
        assert lower * (1 - 1e-12) <= exact <= upper * (1 + 1e-12)
