"""Tests of ``lightning_stability/theory/condition_a.py`` (docs/theory.md §5): the exact minimal constant ``C_A``,
also at ties."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.exact_oracles import as_float, exact_condition_a
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


# =====================================================================================================================
# From test_condition_a_ties.py — §5 Condition A at ties: ``λ_k = λ0``, margins exactly 0, many samples sharing a value.
#
# ``C_A = sup_{0<λ≤λ0} F(−η+λ)/λ^γ`` over the CLOSED range ``(0, λ0]``: a sample with ``λ_k = λ0`` is
# inside, and ``F`` at a jump counts every sample sharing the value. The oracle
# (``exact_oracles.exact_condition_a``) decides every comparison in exact rationals; all inputs here
# are dyadic, so the float64 sums ``δ_k + η`` are exact and the oracle is the spec verbatim.
# =====================================================================================================================


def _t(values):
    return None if values is None else torch.tensor([float(v) for v in values], dtype=torch.float64)


def _assert_matches(d, eta, gamma, lam0, w, expected=None):
    oracle = exact_condition_a(d, eta, gamma, lam0, w)
    if expected is not None:  # the hand value, checked against the oracle
        if isinstance(oracle, Fraction) or oracle == math.inf or oracle == 0:
            assert oracle == expected
        else:
            assert as_float(oracle) == pytest.approx(as_float(expected), rel=1e-15)
    got = theory.condition_a_constant(d, eta, gamma, lam0, weights=w)
    if oracle == math.inf:
        assert got == math.inf
    else:
        assert got == pytest.approx(as_float(oracle), rel=1e-13, abs=0.0)
    # the float-sum brute force of oracles.py agrees on dyadic inputs
    brute = brute_condition_a(d, eta, gamma, lam0, w)
    assert (brute == math.inf) == (oracle == math.inf)
    if brute != math.inf:
        assert brute == pytest.approx(as_float(oracle), rel=1e-13, abs=0.0)
    return got


def test_lambda_equal_to_lambda0_is_inside_the_range():
    """δ = [0, 1, 1, 1], η = 1/2, λ0 = 3/2, γ = 1.

    λ = (1/2, 3/2, 3/2, 3/2). F(−η + 1/2) = 1/4 gives 1/2; F(−η + 3/2) = 1 (all three tied samples)
    at λ = 3/2 = λ0 gives 1/(3/2) = 2/3. The supremum over (0, 3/2] is 2/3. Dropping the samples with
    λ_k = λ0 (a half-open range) would give 1/2.
    """
    d = _t([0.0, 1.0, 1.0, 1.0])
    got = _assert_matches(d, 0.5, 1.0, 1.5, None, expected=Fraction(2, 3))
    assert got == pytest.approx(2 / 3, rel=1e-15)
    assert got != pytest.approx(0.5)
    # the same constant through Theorem A (λ0 = D = η + η0 = 1/2 + 1 by default, and explicitly)
    res = theory.theorem_a_floor(d, 2, 0.5, 1.0, 1.0)
    assert res.lam0 == 1.5
    assert res.condition_a_constant == pytest.approx(2 / 3, rel=1e-15)
    res = theory.theorem_a_floor(d, 2, 0.5, 1.0, 1.0, lam0=1.5)
    assert res.condition_a_constant == pytest.approx(2 / 3, rel=1e-15)


@pytest.mark.parametrize(
    "margins, weights, eta, gamma, lam0, expected",
    [
        # margins exactly 0 shared by three samples, λ0 sitting on them: F = 3/4 at λ = 1
        ([0.0, 0.0, 0.0, 2.0], None, 1.0, 2.0, 1.0, Fraction(3, 4)),
        # every sample tied at λ0: F = 1 at λ = λ0 = 1/4, γ = 1 -> 4
        ([0.0, 0.0, 0.0], None, 0.25, 1.0, 0.25, Fraction(4)),
        # weighted ties at λ0: λ = (1/2, 1, 1, 1, 3), weights (1, 1, 2, 3, 1)/8;
        # at 1/2: (1/8)/(1/2)^2 = 1/2; at 1 = λ0: (7/8)/1 -> 7/8
        ([-0.5, 0.0, 0.0, 0.0, 2.0], [1, 1, 2, 3, 1], 1.0, 2.0, 1.0, Fraction(7, 8)),
        # the same with λ0 just below the tie: only λ = 1/2 remains -> 1/2
        ([-0.5, 0.0, 0.0, 0.0, 2.0], [1, 1, 2, 3, 1], 1.0, 2.0, 0.875, Fraction(1, 2)),
        # zero weight on every tied sample at λ0 except one: λ = (1/2, 1, 1), weights (1, 0, 1)
        # at 1/2: (1/2)/(1/2) = 1; at 1: 1/1 = 1 -> 1
        ([0.0, 0.5, 0.5], [1, 0, 1], 0.5, 1.0, 1.0, Fraction(1)),
        # the maximum is NOT at λ0 but λ0 holds a tie (the tie must not raise the value)
        ([0.0, 0.0, 1.0, 1.0], None, 0.5, 1.0, 1.5, Fraction(1)),
        # a sample exactly at −η: λ_k = 0, C_A = +inf (the condition fails for every C)
        ([-1.0, 0.0, 0.0, 1.0], None, 1.0, 1.0, 2.0, math.inf),
        # ... unless its weight is zero: λ = (1, 1, 2); at 1: (2/3)/1, at 2 = λ0: 1/2 -> 2/3
        ([-1.0, 0.0, 0.0, 1.0], [0, 1, 1, 1], 1.0, 1.0, 2.0, Fraction(2, 3)),
        # λ0 below every λ_k: no jump in (0, λ0] -> 0
        ([1.0, 1.0, 2.0], None, 0.0625, 1.0, 1.0, Fraction(0)),
        # γ = 3, many samples sharing two values, λ0 on the upper one:
        # λ = (1/2 x3, 1 x5, 4); at 1/2: (3/9)/(1/8) = 8/3; at 1: (8/9)/1 -> 8/3
        ([-0.5] * 3 + [0.0] * 5 + [3.0], None, 1.0, 3.0, 1.0, Fraction(8, 3)),
        # seven samples sharing the value on λ0: λ = (1/2, 1 x7); at 1/2: (1/8)/(1/4); at 1 = λ0: 1 -> 1
        ([-0.5] + [0.0] * 7, None, 1.0, 2.0, 1.0, Fraction(1)),
        # γ = 1/2 at a tie with λ0: λ = (1/4, 1 x3); at 1/4: (1/4)/(1/2) = 1/2; at 1 = λ0: 1/1 -> 1
        ([0.0, 0.75, 0.75, 0.75], None, 0.25, 0.5, 1.0, Fraction(1)),
    ],
)
def test_condition_a_tie_cases(margins, weights, eta, gamma, lam0, expected):
    _assert_matches(_t(margins), eta, gamma, lam0, _t(weights), expected=expected)


def test_condition_a_batched_constants_agree_at_ties():
    """``condition_a_constant`` for several λ0 on the tie grid: each λ0 equal to a λ_k includes it."""
    d = _t([-0.25, 0.0, 0.0, 0.5, 0.5, 0.5, 1.0])
    eta = 0.5  # λ = (1/4, 1/2, 1/2, 1, 1, 1, 3/2)
    for lam0 in (0.25, 0.5, 1.0, 1.5):
        for gamma in (0.5, 1.0, 2.0):
            _assert_matches(d, eta, gamma, lam0, None)


EIGHTHS = st.integers(-8, 24)


@st.composite
def tie_cases(draw):
    """Margins on the lattice ℤ/8 (many ties, zeros), integer weights with zeros, η such that
    λ_k ≥ 0 (λ_k = 0 sometimes), λ0 mostly ON one of the λ_k."""
    n = draw(st.integers(1, 10))
    d = [x / 8 for x in draw(st.lists(st.integers(-8, 24), min_size=n, max_size=n))]
    if draw(st.booleans()):
        d[draw(st.integers(0, n - 1))] = 0.0  # a margin exactly 0
    w = draw(st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    if w is not None and sum(w) == 0:
        w[0] = 1
    positive = [x for x, m in zip(d, w or [1] * n) if m > 0]
    eta = -min(positive) + draw(st.integers(0, 6)) / 8
    lams = sorted({x + eta for x in positive if x + eta > 0})
    if lams and draw(st.integers(0, 3)) > 0:
        lam0 = draw(st.sampled_from(lams))  # a tie with λ0
    else:
        lam0 = draw(st.integers(1, 40)) / 8
    gamma = draw(st.sampled_from([0.5, 1.0, 2.0, 3.0, 8.0]))
    return d, w, eta, gamma, lam0


@given(tie_cases())
@example(([0.0, 1.0, 1.0, 1.0], None, 0.5, 1.0, 1.5))
@example(([0.0, 0.0, 0.0, 2.0], None, 1.0, 2.0, 1.0))
@example(([0.0, 0.0, 0.0], None, 0.25, 1.0, 0.25))
@example(([-0.5, 0.0, 0.0, 0.0, 2.0], [1, 1, 2, 3, 1], 1.0, 2.0, 1.0))
@example(([-1.0, 0.0, 0.0, 1.0], None, 1.0, 1.0, 2.0))
@example(([-1.0, 0.0, 0.0, 1.0], [0, 1, 1, 1], 1.0, 1.0, 2.0))
@example(([0.0, 0.75, 0.75, 0.75], None, 0.25, 0.5, 1.0))
def test_condition_a_exact_oracle_with_ties(case):
    d, w, eta, gamma, lam0 = case
    _assert_matches(_t(d), eta, gamma, lam0, _t(w))
