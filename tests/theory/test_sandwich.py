"""§1-§3: margins, per-sample cross entropy, the loss sandwich, masses, loss floor."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.oracles import (
    dyadic_weights,
    fK,
    g,
    naive_bad_mass,
    naive_cdf,
    naive_cross_entropy,
    naive_good_mass,
    naive_loss_bounds,
    naive_loss_floor,
    naive_margins,
)

SEEDS = st.integers(0, 2**32 - 1)


def random_logits(rng, n, K, scale):
    z = torch.tensor(rng.normal(size=(n, K)) * scale, dtype=torch.float64)
    y = torch.tensor(rng.integers(0, K, size=n), dtype=torch.long)
    if rng.random() < 0.3:  # exact ties between classes
        z = torch.round(z)
    return z, y


def random_weights(rng, n):
    r = rng.random()
    if r < 0.35:
        return None
    if r < 0.7:
        return torch.tensor(dyadic_weights(rng, n, total=64))
    return torch.tensor(rng.uniform(0.0, 3.0, size=n) * (rng.random(n) < 0.85))


@settings(max_examples=40, deadline=None)
@given(SEEDS, st.sampled_from([2, 3, 5, 10]), st.sampled_from([0.05, 1.0, 8.0, 300.0]))
def test_margins_and_cross_entropy_match_naive_loops(seed, K, scale):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 15))
    z, y = random_logits(rng, n, K, scale)
    d = theory.margins(z, y)
    ce = theory.per_sample_cross_entropy(z, y)
    assert d.dtype == torch.float64 and d.shape == (n,)
    assert ce.dtype == torch.float64 and ce.shape == (n,)
    nd = naive_margins(z, y)
    nce = naive_cross_entropy(z, y)
    for a, b in zip(d.tolist(), nd):
        assert a == pytest.approx(b, rel=1e-14, abs=1e-300)
    for a, b in zip(ce.tolist(), nce):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12)
    # sign of the margin = correctness (a tie counts as misclassified)
    pred_ok = [(row[t] > max(v for j, v in enumerate(row) if j != t)) for row, t in zip(z.tolist(), y.tolist())]
    assert [x > 0 for x in d.tolist()] == pred_ok


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


def test_float32_logits_give_float64_results():
    torch.manual_seed(3)
    z = torch.randn(9, 4) * 5
    y = torch.randint(0, 4, (9,))
    d = theory.margins(z, y)
    ce = theory.per_sample_cross_entropy(z, y)
    assert d.dtype == torch.float64 and ce.dtype == torch.float64
    assert np.allclose(d.numpy(), naive_margins(z, y), rtol=1e-5, atol=1e-5)
    assert np.allclose(ce.numpy(), naive_cross_entropy(z, y), rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(SEEDS)
def test_masses_and_cdf(seed):
    """good_mass = mu(delta > eta), bad_mass = mu(delta < -eta), margin_cdf = mu(delta <= x),
    with exact ties (dyadic margins, thresholds on the margins themselves)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 16))
    d = torch.tensor(rng.integers(-12, 12, size=n) / 4.0, dtype=torch.float64)
    w = random_weights(rng, n)
    if w is not None and float(w.sum()) == 0.0:
        w = None
    etas = [0.0, 0.25, -0.5, 1.0, float(rng.normal())] + [abs(x) for x in d.tolist()[:4]]
    for eta in etas:
        assert theory.good_mass(d, eta, weights=w) == pytest.approx(naive_good_mass(d, eta, w), abs=1e-12)
        assert theory.bad_mass(d, eta, weights=w) == pytest.approx(naive_bad_mass(d, eta, w), abs=1e-12)
    for x in etas + [-v for v in etas] + d.tolist():
        assert theory.margin_cdf(d, x, weights=w) == pytest.approx(naive_cdf(d, x, w), abs=1e-12)
    # a tie delta = 0 is misclassified
    assert theory.good_mass(torch.tensor([0.0, 1.0], dtype=torch.float64), 0.0) == 0.5


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 5.0), st.floats(-4.0, 8.0))
def test_loss_floor(loss, eta):
    v = theory.loss_floor(loss, eta)
    assert isinstance(v, float)
    assert 0.0 <= v <= 1.0
    assert v == pytest.approx(naive_loss_floor(loss, eta), abs=1e-12)
    assert theory.loss_floor(loss) == pytest.approx(naive_loss_floor(loss, 0.0), abs=1e-12)
