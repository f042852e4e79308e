"""Tests of ``lightning_stability/theory/loss.py`` (docs/theory.md §2–§3): the loss sandwich and Theorem 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.oracles import (
    fK,
    g,
    naive_cross_entropy,
    naive_good_mass,
    naive_loss_bounds,
    naive_loss_floor,
    naive_margins,
    random_logits,
    random_weights,
)

# =====================================================================================================================
# From test_theorem0.py — §3 Theorem 0 along random loss-decreasing trajectories.
# =====================================================================================================================


SEEDS = st.integers(0, 2**32 - 1)


def ce_torch(z, y):
    # plain float64 logsumexp (fast); the mpmath oracle is compared once per example
    return (torch.logsumexp(z, dim=1) - z[torch.arange(len(y)), y]).numpy()


@settings(max_examples=20, deadline=None)
@given(SEEDS, st.sampled_from([2, 3, 10]))
def test_theorem0_on_random_trajectories(seed, K):
    """Random walk of logits; every later step whose true CE loss is <= the first
    step's loss L must have mu(G'_eta) >= 1 - L/g(eta) for every eta (and
    accuracy >= 1 - L/log 2), also with L replaced by the margin bound sum mu f_K."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 25))
    w = None if rng.random() < 0.5 else torch.tensor(rng.uniform(0.05, 2.0, size=n))
    mu = np.full(n, 1.0 / n) if w is None else (w / w.sum()).numpy()
    y = torch.tensor(rng.integers(0, K, size=n), dtype=torch.long)
    z = torch.tensor(rng.normal(size=(n, K)) * 2.0, dtype=torch.float64)
    z[torch.arange(n), y] += float(rng.uniform(0.0, 5.0))  # mostly well classified
    L0 = float(np.dot(mu, naive_cross_entropy(z, y)))
    assert math.isclose(L0, float(np.dot(mu, ce_torch(z, y))), rel_tol=1e-12, abs_tol=1e-14)
    d0 = theory.margins(z, y)
    _, upper0 = theory.loss_bounds(d0, K, weights=w)
    assert L0 <= upper0 * (1 + 1e-12)
    etas = [-2.0, -0.5, 0.0, 0.3, 1.0, 2.5]
    kept = 0
    zt = z.clone()
    for _ in range(60):
        zt = zt + torch.tensor(rng.normal(size=(n, K)) * rng.choice([0.1, 0.5, 2.0]), dtype=torch.float64)
        Lt = float(np.dot(mu, ce_torch(zt, y)))
        if Lt > L0:
            zt = z.clone() if rng.random() < 0.3 else zt
            continue
        kept += 1
        dt = theory.margins(zt, y)
        acc = theory.good_mass(dt, 0.0, weights=w)
        if kept <= 3:
            assert math.isclose(acc, naive_good_mass(naive_margins(zt, y), 0.0, w), abs_tol=1e-12)
        assert acc >= 1 - L0 / math.log(2) - 1e-12
        assert acc >= theory.loss_floor(L0, 0.0) - 1e-12
        assert acc >= theory.loss_floor(upper0, 0.0) - 1e-12
        for eta in etas:
            gm = theory.good_mass(dt, eta, weights=w)
            floor = theory.loss_floor(L0, eta)
            assert math.isclose(floor, naive_loss_floor(L0, eta), abs_tol=1e-12)
            assert gm >= floor - 1e-12
            assert gm >= 1 - L0 / g(eta) - 1e-12
            assert gm >= theory.loss_floor(upper0, eta) - 1e-12
    # the first point itself is always a valid "later" point
    for eta in etas:
        assert theory.good_mass(d0, eta, weights=w) >= theory.loss_floor(L0, eta) - 1e-12


def test_theorem0_is_tight_for_two_point_example():
    """Floor 1 - L/g(eta) is attained: mass 1-p at margin +inf-ish, mass p exactly at eta."""
    eta = 0.5
    p = 0.25
    d = torch.tensor([60.0, 60.0, 60.0, eta], dtype=torch.float64)
    lower, upper = theory.loss_bounds(d, 2)
    floor = theory.loss_floor(upper, eta)
    assert math.isclose(floor, 1 - p, rel_tol=1e-9)
    assert theory.good_mass(d, eta) == 0.75


# =====================================================================================================================
# From test_loss.py — Theorem 0's floor where ``g(η)`` underflows (issue 16, see TESTING.md).
#
# ``loss_floor(L, η) = clip(1 − L / g(η), 0, 1)``; for ``η ≳ 745`` the float64 value of ``g(η) = log(1 + e^{−η})``
# is 0, and the documented answer is the limit: floor 1 when ``L = 0`` (nothing is lost), 0 when ``L > 0``.
# The mutation run found the ``L = 0`` branch untested.
# =====================================================================================================================


@pytest.mark.parametrize("eta", [800.0, 1e6, 1e300])
def test_loss_floor_where_g_underflows(eta):
    assert math.log1p(math.exp(-eta)) == 0.0  # the case: g(η) is 0 in float64
    assert theory.loss_floor(0.0, eta) == 1.0
    assert theory.loss_floor(1e-300, eta) == 0.0
    assert theory.loss_floor(5.0, eta) == 0.0


def test_loss_floor_just_below_the_underflow():
    eta = 700.0  # g(700) = e^{-700} ≈ 9.86e-305 > 0
    g = math.exp(-eta)
    assert theory.loss_floor(0.0, eta) == 1.0
    assert theory.loss_floor(g / 4, eta) == pytest.approx(0.75, rel=1e-12)
    assert theory.loss_floor(g, eta) == pytest.approx(0.0, abs=1e-12)


def test_loss_floor_is_clipped_to_the_unit_interval():
    assert theory.loss_floor(0.0) == 1.0
    assert theory.loss_floor(math.log(2.0) / 2) == pytest.approx(0.5, rel=1e-15)
    assert theory.loss_floor(10.0) == 0.0
    assert theory.loss_floor(0.0, eta=-50.0) == 1.0
    assert theory.loss_floor(1.0, eta=-50.0) == pytest.approx(1 - 1 / 50, rel=1e-12)  # g(−50) ≈ 50


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64])
def test_margin_losses_are_float64_for_any_input_dtype(dtype):
    margins = torch.tensor([0, 2, -3]).to(dtype)
    g = theory.binary_margin_loss(margins)
    f = theory.multiclass_margin_loss(margins, 3)
    assert g.dtype == torch.float64 and f.dtype == torch.float64
    expected_g = [math.log(2.0), math.log1p(math.exp(-2.0)), 3.0 + math.log1p(math.exp(-3.0))]
    expected_f = [math.log(3.0), math.log1p(2 * math.exp(-2.0)), math.log1p(2 * math.exp(3.0))]
    assert g.tolist() == pytest.approx(expected_g, rel=1e-15)
    assert f.tolist() == pytest.approx(expected_f, rel=1e-15)


# =====================================================================================================================
# From test_sandwich.py — §2 the loss sandwich and the loss floor (its margin and mass tests are in test_distribution.py).
# =====================================================================================================================


@settings(max_examples=40, deadline=None)
@given(SEEDS, st.sampled_from([2, 3, 4, 10, 100]), st.sampled_from([0.1, 1.0, 6.0, 200.0]))
def test_loss_sandwich(seed, K, scale):
    """g(delta_k) <= l_k <= f_K(delta_k) per sample (naive formulas and package values),
    equality when K = 2; loss_bounds = (sum mu g, sum mu f_K)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    z, y = random_logits(rng, n, K, scale)
    w = random_weights(rng, n)
    if w is not None and float(w.sum()) == 0.0:
        w = None
    nd = naive_margins(z, y)
    nce = naive_cross_entropy(z, y)
    for dk, lk in zip(nd, nce):
        lo, hi = g(dk), fK(dk, K)
        assert lo <= lk * (1 + 1e-12) + 1e-300
        assert lk <= hi * (1 + 1e-12) + 1e-300
        if K == 2:
            assert lo == pytest.approx(lk, rel=1e-12, abs=1e-300)
            assert hi == pytest.approx(lk, rel=1e-12, abs=1e-300)
    d = theory.margins(z, y)
    ce = theory.per_sample_cross_entropy(z, y)
    lower, upper = theory.loss_bounds(d, K, weights=w)
    assert isinstance(lower, float) and isinstance(upper, float)
    nlo, nhi = naive_loss_bounds(nd, K, w)
    # rel 1e-9 on the lower bound: the exactness of g for very negative margins is
    # tested separately (test_g_exact_for_very_negative_margins)
    assert lower == pytest.approx(nlo, rel=1e-9, abs=1e-15)
    assert lower <= nlo * (1 + 1e-12) + 1e-15  # never above the true lower bound
    assert upper == pytest.approx(nhi, rel=1e-12, abs=1e-15)
    mu = np.full(n, 1.0 / n) if w is None else (w / w.sum()).numpy()
    L = float(np.sum(mu * ce.numpy()))
    assert lower <= L * (1 + 1e-12) + 1e-13
    assert L <= upper * (1 + 1e-12) + 1e-13
    if K == 2:
        assert lower == pytest.approx(upper, rel=1e-12, abs=1e-15)
        assert L == pytest.approx(upper, rel=1e-11, abs=1e-13)


def test_loss_bounds_extreme_margins_are_stable():
    d = torch.tensor([-800.0, -50.0, 0.0, 50.0, 800.0], dtype=torch.float64)
    for K in (2, 7):
        lo, hi = theory.loss_bounds(d, K)
        nlo, nhi = naive_loss_bounds(d, K)
        assert math.isfinite(lo) and math.isfinite(hi)
        assert lo == pytest.approx(nlo, rel=1e-12)
        assert hi == pytest.approx(nhi, rel=1e-12)


def test_g_exact_for_very_negative_margins():
    """g(d) = log(1 + e^-d) exactly (to float precision) also for d < -20.
    (torch.nn.functional.softplus with its default threshold=20 returns -d there, an
    absolute error up to e^-20 ~ 2e-9; the deviation is in the safe direction for a
    lower bound, but it is not the g of §2.)"""
    for dv in (-20.5, -25.0, -30.0, -35.0):
        d = torch.tensor([dv], dtype=torch.float64)
        lo, _ = theory.loss_bounds(d, 3)
        assert lo == pytest.approx(g(dv), rel=1e-14)
    d = torch.tensor([-21.0, -22.0, 3.0], dtype=torch.float64)
    lo, _ = theory.loss_bounds(d, 2)
    assert lo == pytest.approx(naive_loss_bounds(d, 2)[0], rel=1e-14)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 5.0), st.floats(-4.0, 8.0))
def test_loss_floor(loss, eta):
    v = theory.loss_floor(loss, eta)
    assert isinstance(v, float)
    assert 0.0 <= v <= 1.0
    assert v == pytest.approx(naive_loss_floor(loss, eta), abs=1e-12)
    assert theory.loss_floor(loss) == pytest.approx(naive_loss_floor(loss, 0.0), abs=1e-12)
