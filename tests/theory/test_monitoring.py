"""§8 monitoring: flip masses, instability events, and a counterexample of the kind docs/theory.md §8 describes
(cross entropy falls while the prediction flips): the task's seed example, probabilities ``A`` → ``B`` below."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.oracles import naive_cross_entropy, naive_flip_masses, naive_instability_event, naive_margins

SEEDS = st.integers(0, 2**32 - 1)
TINY = 1e-12


def probs_to_logits(p):
    p = np.asarray(p, dtype=np.float64)
    p = np.where(p == 0, TINY, p)
    p = p / p.sum()
    return torch.tensor(np.log(p), dtype=torch.float64)


A = [0.1001, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.0999]
B = [0.49, 0.51, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def seed_ce(vec):
    """The (binary-per-class) 'cross entropy' of the seed's snippet; index 0 is true."""
    return -(math.log(vec[0]) + sum(math.log(1 - el) for el in vec[1:]))


def test_counterexample_single_sample():
    za = probs_to_logits(A)[None, :]
    zb = probs_to_logits(B)[None, :]
    y = torch.tensor([0])
    # the seed's own numbers
    assert seed_ce(A) == pytest.approx(3.24971912864, rel=1e-10)
    assert seed_ce(B) == pytest.approx(1.42669977575, rel=1e-10)
    # true-class cross entropy falls ...
    ce_a = float(theory.per_sample_cross_entropy(za, y)[0])
    ce_b = float(theory.per_sample_cross_entropy(zb, y)[0])
    assert ce_a == pytest.approx(-math.log(0.1001), rel=1e-9)
    assert ce_b == pytest.approx(-math.log(0.49), rel=1e-9)
    assert ce_b < ce_a
    assert ce_a == pytest.approx(naive_cross_entropy(za, y)[0], rel=1e-12)
    # ... while the margin goes from > 0 to < 0 (the prediction flips to class 1)
    da = theory.margins(za, y)
    db = theory.margins(zb, y)
    assert float(da[0]) == pytest.approx(math.log(0.1001 / 0.1), rel=1e-9) and float(da[0]) > 0
    assert float(db[0]) == pytest.approx(math.log(0.49 / 0.51), rel=1e-9) and float(db[0]) < 0
    acc_a = theory.good_mass(da, 0.0)
    acc_b = theory.good_mass(db, 0.0)
    assert (acc_a, acc_b) == (1.0, 0.0)
    assert theory.instability_event(ce_a, acc_a, ce_b, acc_b)
    assert theory.instability_event(ce_a, acc_a, ce_b, acc_b, tol=0.5)
    assert not theory.instability_event(ce_a, acc_a, ce_b, acc_b, tol=1.0)
    assert theory.flip_masses(da, db) == (1.0, 0.0)
    assert theory.flip_masses(db, da) == (0.0, 1.0)
    # no contradiction with Theorem 0: the first loss is too large to certify anything
    assert theory.loss_floor(ce_a) == 0.0


def test_counterexample_in_a_small_set():
    """Counterexample plus two stable, well classified samples; weights (2, 1, 1)."""
    za = torch.stack([probs_to_logits(A), torch.tensor([0.0, 9.0] + [0.0] * 8), torch.tensor([9.0] + [0.0] * 9)])
    zb = torch.stack([probs_to_logits(B), torch.tensor([0.0, 9.5] + [0.0] * 8), torch.tensor([9.0] + [0.0] * 9)])
    y = torch.tensor([0, 1, 0])
    w = torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)
    mu = (w / w.sum()).numpy()
    La = float(np.dot(mu, theory.per_sample_cross_entropy(za, y).numpy()))
    Lb = float(np.dot(mu, theory.per_sample_cross_entropy(zb, y).numpy()))
    assert Lb < La
    da, db = theory.margins(za, y), theory.margins(zb, y)
    acc_a = theory.good_mass(da, 0.0, weights=w)
    acc_b = theory.good_mass(db, 0.0, weights=w)
    assert acc_a == 1.0 and acc_b == pytest.approx(0.5)
    assert theory.instability_event(La, acc_a, Lb, acc_b)
    f, l = theory.flip_masses(da, db, weights=w)
    assert f == pytest.approx(0.5) and l == 0.0
    assert (f, l) == pytest.approx(naive_flip_masses(naive_margins(za, y), naive_margins(zb, y), w))


@settings(max_examples=40, deadline=None)
@given(SEEDS)
def test_flip_masses_vs_naive(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 20))
    prev = torch.tensor(rng.integers(-3, 4, size=n) / 2.0, dtype=torch.float64)  # includes exact zeros
    cur = torch.tensor(rng.integers(-3, 4, size=n) / 2.0, dtype=torch.float64)
    r = rng.random()
    w = None if r < 0.4 else torch.tensor(rng.uniform(0, 2, size=n) * (rng.random(n) < 0.8))
    if w is not None and float(w.sum()) == 0:
        w = None
    f, l = theory.flip_masses(prev, cur, weights=w)
    nf, nl = naive_flip_masses(prev, cur, w)
    assert f == pytest.approx(nf, abs=1e-12) and l == pytest.approx(nl, abs=1e-12)
    # accuracy change = learned - forgotten
    acc_prev = theory.good_mass(prev, 0.0, weights=w)
    acc_cur = theory.good_mass(cur, 0.0, weights=w)
    assert acc_cur - acc_prev == pytest.approx(l - f, abs=1e-12)


def test_instability_event_exhaustive():
    vals = [0.0, 0.5, 0.7, 1.0]
    for pl, pa, l, a, tol in itertools.product(vals, vals, vals, vals, [0.0, 0.2, 0.5]):
        assert theory.instability_event(pl, pa, l, a, tol=tol) == naive_instability_event(pl, pa, l, a, tol), (
            pl,
            pa,
            l,
            a,
            tol,
        )
    assert theory.instability_event(1.0, 0.9, 0.5, 0.8) is True
    assert theory.instability_event(1.0, 0.9, 1.0, 0.8) is False  # loss did not improve
    assert theory.instability_event(1.0, 0.9, 0.5, 0.9) is False  # accuracy did not fall
