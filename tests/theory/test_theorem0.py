"""§3 Theorem 0 along random loss-decreasing trajectories."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.oracles import g, naive_cross_entropy, naive_good_mass, naive_loss_floor, naive_margins

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
