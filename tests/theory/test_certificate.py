"""§7 certify(): the report against the oracles; floors ordered; reproducibility;
invariance to permutations and weight scaling."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.oracles import (
    close,
    naive_bad_mass,
    naive_good_mass,
    naive_loss_bounds,
    naive_loss_floor,
)

SEEDS = st.integers(0, 2**32 - 1)
# a small grid keeps certify() fast under hypothesis (keys of theory.CertificateGrid)
SMALL = dict(zetas=(0.05, 0.2, 0.5), tau_fractions=(0.0625,), gammas=(1.0, 4.0), width_fractions=(0.125,))


def random_case(rng):
    n = int(rng.integers(1, 40))
    K = int(rng.choice([2, 3, 10]))
    kind = rng.random()
    if kind < 0.4:
        d = rng.normal(2.0, 2.0, size=n)
    elif kind < 0.7:
        d = rng.integers(-8, 40, size=n) / 8.0
    else:
        d = np.concatenate([rng.normal(5.0, 1.0, size=n), rng.normal(-3.0, 0.5, size=1)])
        n += 1
    d = torch.tensor(d, dtype=torch.float64)
    r = rng.random()
    if r < 0.5:
        w = None
    else:
        w = torch.tensor(rng.uniform(0.1, 2.0, size=n))
    return d, K, w


def check_report(rep, d, K, w, loss=None):
    n = len(d)
    assert rep.num_samples == n and rep.num_classes == K
    assert rep.accuracy == pytest.approx(naive_good_mass(d, 0.0, w), abs=1e-12)
    assert rep.accuracy == pytest.approx(theory.good_mass(d, 0.0, weights=w), abs=1e-14)
    lo, hi = naive_loss_bounds(d, K, w)
    assert rep.loss_lower == pytest.approx(lo, rel=1e-9, abs=1e-15)
    assert rep.loss_upper == pytest.approx(hi, rel=1e-12, abs=1e-15)
    assert rep.margin_loss_floor == pytest.approx(naive_loss_floor(hi), abs=1e-12)
    if loss is None:
        assert rep.loss is None
        assert rep.loss_floor == pytest.approx(naive_loss_floor(hi), abs=1e-12)
    else:
        assert rep.loss == loss
        assert rep.loss_floor == pytest.approx(naive_loss_floor(loss), abs=1e-12)
    assert rep.margin_min == float(d.min())
    assert isinstance(rep.mass_etas, tuple) and isinstance(rep.good_masses, tuple)
    assert isinstance(rep.bad_masses, tuple)
    assert len(rep.mass_etas) == len(rep.good_masses) == len(rep.bad_masses) > 0
    for eta, gm, bm in zip(rep.mass_etas, rep.good_masses, rep.bad_masses):
        assert gm == pytest.approx(naive_good_mass(d, eta, w), abs=1e-12)
        assert bm == pytest.approx(naive_bad_mass(d, eta, w), abs=1e-12)
    # §7: 0 <= thm floor <= loss floor from sum mu f_K <= 1
    assert 0.0 <= rep.theorem_a.floor <= rep.margin_loss_floor + 1e-12
    assert 0.0 <= rep.theorem_b.floor <= rep.margin_loss_floor + 1e-12
    assert rep.margin_loss_floor <= 1.0
    # the reported eta keeps the bad set empty
    assert rep.theorem_a.eta >= -float(d.min())
    assert rep.theorem_b.eta >= -float(d.min())
    dct = rep.to_dict()
    assert isinstance(dct, dict) and dct
    for k, v in dct.items():
        assert isinstance(k, str)
        assert isinstance(v, float), (k, v)


def reproduce(rep, d, K, w):
    ta, tb = rep.theorem_a, rep.theorem_b
    ra = theory.theorem_a_floor(d, K, ta.eta, ta.eta0, ta.gamma, lam0=ta.lam0, weights=w)
    assert ra.floor == pytest.approx(ta.floor, abs=1e-12)
    assert ra.envelope_bound == pytest.approx(ta.envelope_bound, rel=1e-12)
    assert ra.condition_a_constant == pytest.approx(ta.condition_a_constant, rel=1e-12)
    rb = theory.theorem_b_floor(
        d,
        K,
        tb.eta,
        tb.eta0,
        dilation=tb.dilation,
        min_width=tb.min_width,
        min_cluster_mass=tb.min_cluster_mass,
        weights=w,
    )
    assert rb.kappa_lower == pytest.approx(tb.kappa_lower, rel=1e-12), (rb, tb)
    assert rb.floor == pytest.approx(tb.floor, abs=1e-12), (rb, tb)


@settings(max_examples=12, deadline=None)
@given(SEEDS)
def test_certify_report_fields(seed):
    rng = np.random.default_rng(seed)
    d, K, w = random_case(rng)
    rep = theory.certify(d, K, weights=w, **SMALL)
    check_report(rep, d, K, w)


@settings(max_examples=6, deadline=None)
@given(SEEDS)
def test_certify_reported_parameters_reproduce_floors(seed):
    rng = np.random.default_rng(seed)
    d, K, w = random_case(rng)
    rep = theory.certify(d, K, weights=w, **SMALL)
    reproduce(rep, d, K, w)


def test_certify_default_grid():
    torch.manual_seed(0)
    d = torch.cat([torch.randn(60, dtype=torch.float64) + 4.0, torch.tensor([-1.5, 0.3])])
    rep = theory.certify(d, 10)
    check_report(rep, d, 10, None)
    reproduce(rep, d, 10, None)


@settings(max_examples=4, deadline=None)
@given(SEEDS)
def test_certify_invariances(seed):
    """Permuting samples (with their weights) or scaling the weights changes nothing."""
    rng = np.random.default_rng(seed)
    d, K, w = random_case(rng)
    if w is None:
        w = torch.ones(len(d), dtype=torch.float64)
    base = theory.certify(d, K, weights=w, **SMALL).to_dict()
    perm = torch.tensor(rng.permutation(len(d)))
    per = theory.certify(d[perm], K, weights=w[perm], **SMALL).to_dict()
    scl = theory.certify(d, K, weights=w * 3.7, **SMALL).to_dict()
    assert set(base) == set(per) == set(scl)
    for k in base:
        assert close(base[k], per[k], rel=1e-12, abs_=1e-12), (k, base[k], per[k])
        assert close(base[k], scl[k], rel=1e-12, abs_=1e-12), (k, base[k], scl[k])


@pytest.mark.parametrize("grid", [SMALL, {}], ids=["small-grid", "default-grid"])
def test_certify_none_weights_equal_uniform_tensor(grid):
    """weights=None means uniform 1/N, so it must give the same report as torch.ones(N).
    (A deterministic case: 19 margins around 5 and one at -3.14, K = 3.)"""
    rng = np.random.default_rng(1)
    d, K, _ = random_case(rng)
    uni = theory.certify(d, K, **grid).to_dict()
    ones = theory.certify(d, K, weights=torch.ones(len(d), dtype=torch.float64), **grid).to_dict()
    diff = {k: (uni[k], ones[k]) for k in uni if not close(uni[k], ones[k], rel=1e-12, abs_=1e-12)}
    assert not diff, diff


def test_certify_with_exact_loss():
    torch.manual_seed(1)
    z = torch.randn(30, 5, dtype=torch.float64) * 3
    y = torch.randint(0, 5, (30,))
    z[torch.arange(30), y] += 4.0
    d = theory.margins(z, y)
    L = float(theory.per_sample_cross_entropy(z, y).mean())
    rep = theory.certify(d, 5, loss=L, **SMALL)
    check_report(rep, d, 5, None, loss=L)
    # the exact loss is below the margin bound, so its floor is at least as strong
    assert rep.loss_floor >= rep.margin_loss_floor - 1e-12
    assert rep.loss_floor == pytest.approx(theory.loss_floor(L), abs=1e-15)


def test_certify_unknown_override():
    d = torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64)
    with pytest.raises(ValueError):
        theory.certify(d, 3, no_such_grid_key=1)
