"""§5 Condition A: the exact minimal constant C_A."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.oracles import brute_condition_a, dyadic_weights, grid_sup_condition_a

SEEDS = st.integers(0, 2**32 - 1)


def _check(d, eta, gamma, lam0, w):
    ca = theory.condition_a_constant(d, eta, gamma, lam0, weights=w)
    assert isinstance(ca, float)
    brute = brute_condition_a(d, eta, gamma, lam0, w)
    if math.isinf(brute):
        assert ca == math.inf
        return ca
    assert ca == pytest.approx(brute, rel=1e-12, abs=1e-300)
    gs = grid_sup_condition_a(d, eta, gamma, lam0, w, n_grid=1500)
    assert gs <= ca * (1 + 1e-12)  # C_A is a supremum: no grid point beats it
    return ca


@settings(max_examples=40, deadline=None)
@given(SEEDS, st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0]))
def test_condition_a_constant_dyadic_ties(seed, gamma):
    """Dyadic margins (many exact ties), dyadic weights with zeros, eta on the grid."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 14))
    d = torch.tensor(rng.integers(-8, 32, size=n) / 8.0, dtype=torch.float64)
    w = None if rng.random() < 0.3 else torch.tensor(dyadic_weights(rng, n, total=32))
    mu = torch.full((n,), 1.0) if w is None else w
    pos = d[mu > 0]
    # mostly choose eta with B_eta empty (finite C_A); sometimes not
    if rng.random() < 0.8:
        eta = float(-pos.min()) + float(rng.integers(1, 8)) / 8.0
    else:
        eta = float(-pos.min()) - float(rng.integers(0, 3)) / 8.0  # lambda_k <= 0 -> inf
    D = eta + float(rng.integers(1, 40)) / 8.0
    lam0 = float(rng.choice([D, D / 2, float(rng.integers(1, 16)) / 8.0]))
    if lam0 <= 0:
        lam0 = float(rng.integers(1, 16)) / 8.0
    _check(d, eta, gamma, lam0, w)


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.floats(0.3, 6.0))
def test_condition_a_constant_generic(seed, gamma):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    d = torch.tensor(rng.normal(1.0, 2.0, size=n), dtype=torch.float64)
    w = None if rng.random() < 0.5 else torch.tensor(rng.uniform(0.0, 1.0, size=n))
    if w is not None and float(w.sum()) == 0:
        w = None
    eta = float(-d.min()) + float(rng.uniform(0.01, 1.0))
    lam0 = float(rng.uniform(0.05, 1.0)) * (eta + float(d.max()) + 1.0)
    _check(d, eta, gamma, lam0, w)


def test_condition_a_hand_examples():
    d = torch.tensor([-1.0, -1.0, 0.0, 2.0], dtype=torch.float64)
    # eta = 2: lambda = (1, 1, 2, 4); F(-2+1) = 1/2 (both ties), F at 2: 3/4, at 4: 1
    # gamma = 1, lam0 = 4: max(0.5/1, 0.75/2, 1/4) = 0.5
    assert theory.condition_a_constant(d, 2.0, 1.0, 4.0) == pytest.approx(0.5, rel=1e-15)
    # gamma = 1/2: max(0.5, 0.75/sqrt2, 1/2) = 0.75/sqrt(2)
    assert theory.condition_a_constant(d, 2.0, 0.5, 4.0) == pytest.approx(0.75 / math.sqrt(2), rel=1e-14)
    # lam0 below every lambda_k -> no jump in (0, lam0] -> 0
    assert theory.condition_a_constant(d, 2.0, 1.0, 0.5) == 0.0
    # lambda_k = 0 exactly -> inf; lambda_k < 0 -> inf
    assert theory.condition_a_constant(d, 1.0, 1.0, 4.0) == math.inf
    assert theory.condition_a_constant(d, 0.5, 1.0, 4.0) == math.inf
    # weight-0 samples carry no mass: a zero-weight sample below -eta does not make it inf
    d2 = torch.tensor([-5.0, 0.0, 1.0], dtype=torch.float64)
    w2 = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    assert theory.condition_a_constant(d2, 1.0, 1.0, 3.0, weights=w2) == pytest.approx(0.5, rel=1e-15)
    # weights are normalised
    assert theory.condition_a_constant(d2, 1.0, 1.0, 3.0, weights=7 * w2) == pytest.approx(0.5, rel=1e-15)
    # weighted ties: lambda = (1,1,2); weights (1,3,4)/8 -> F at 1 = 1/2
    d3 = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    w3 = torch.tensor([1.0, 3.0, 4.0], dtype=torch.float64)
    assert theory.condition_a_constant(d3, 1.0, 2.0, 2.0, weights=w3) == pytest.approx(0.5, rel=1e-15)
