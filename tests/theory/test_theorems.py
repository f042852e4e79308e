"""§5 Theorem A and §6 Theorem B floors: every field against the oracles."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.oracles import (
    brute_condition_a,
    brute_kappa,
    dyadic_weights,
    exact_weights,
    naive_cdf,
    naive_loss_bounds,
    naive_loss_floor,
    phi_trivial_closed_form,
    phi_u_a_exact,
    phi_u_b_exact,
)

SEEDS = st.integers(0, 2**32 - 1)
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
    """THEORY.md §5: Theorem A assumes ``B_η = ∅`` (and §7 builds every candidate with ``η ≥ −min δ``);
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
