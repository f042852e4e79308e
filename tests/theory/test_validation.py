"""Bad input raises ValueError naming the offending argument."""

import math

import pytest
import torch

from lightning_stability import theory

Z = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
Y = torch.tensor([1, 2])
D = torch.tensor([0.5, -0.2, 1.5, 2.0], dtype=torch.float64)


def nan_at(t, idx):
    t = t.clone()
    t[idx] = math.nan
    return t


@pytest.mark.parametrize("fn", [theory.margins, theory.per_sample_cross_entropy])
@pytest.mark.parametrize(
    "logits,targets,name",
    [
        (nan_at(Z, (0, 1)), Y, "logits"),
        (Z.clone().index_fill_(1, torch.tensor([0]), math.inf), Y, "logits"),
        (Z.clone().index_fill_(1, torch.tensor([2]), -math.inf), Y, "logits"),
        (Z[:, :1], torch.tensor([0, 0]), "logits"),  # K = 1
        (Z, torch.tensor([1, 3]), "targets"),  # out of range
        (Z, torch.tensor([-1, 0]), "targets"),
        (Z, torch.tensor([1, 2, 0]), "targets|logits"),  # mismatched N
        (Z[0], torch.tensor([1]), "logits"),  # not 2-D
        (torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, dtype=torch.long), "logits|targets"),  # empty
    ],
)
def test_logits_targets(fn, logits, targets, name):
    with pytest.raises(ValueError, match=name):
        fn(logits, targets)


@pytest.mark.parametrize(
    "weights",
    [
        torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64),  # negative
        torch.zeros(4, dtype=torch.float64),  # zero sum
        torch.tensor([1.0, math.nan, 1.0, 1.0], dtype=torch.float64),
        torch.tensor([1.0, math.inf, 1.0, 1.0], dtype=torch.float64),
        torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64),  # wrong length
        torch.ones(4, 1, dtype=torch.float64),  # not 1-D
    ],
)
def test_bad_weights(weights):
    calls = [
        lambda: theory.loss_bounds(D, 3, weights=weights),
        lambda: theory.good_mass(D, 0.0, weights=weights),
        lambda: theory.bad_mass(D, 0.0, weights=weights),
        lambda: theory.margin_cdf(D, 0.0, weights=weights),
        lambda: theory.condition_a_constant(D, 1.0, 1.0, 1.0, weights=weights),
        lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.1, weights=weights),
        lambda: theory.flip_masses(D, D, weights=weights),
        lambda: theory.certify(D, 3, weights=weights),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="weights"):
            call()


def test_num_classes():
    for K in (1, 0, -2):
        with pytest.raises(ValueError, match="num_classes"):
            theory.loss_bounds(D, K)
        with pytest.raises(ValueError, match="num_classes"):
            theory.certify(D, K)
        with pytest.raises(ValueError, match="num_classes"):
            theory.envelope_loss_bound(lambda lam: torch.zeros_like(lam), 1.0, 1.0, K)
        with pytest.raises(ValueError, match="num_classes"):
            theory.theorem_a_floor(D, K, 1.0, 1.0, 1.0)


def test_empty_margins():
    e = torch.zeros(0, dtype=torch.float64)
    for call in [
        lambda: theory.loss_bounds(e, 3),
        lambda: theory.good_mass(e, 0.0),
        lambda: theory.bad_mass(e, 0.0),
        lambda: theory.margin_cdf(e, 0.0),
        lambda: theory.condition_a_constant(e, 1.0, 1.0, 1.0),
        lambda: theory.certify(e, 3),
    ]:
        with pytest.raises(ValueError, match="margins"):
            call()
    with pytest.raises(ValueError, match="values"):
        theory.condition_b_constant(e, 2.0, 0.5, 0.1)


def test_flip_masses_mismatch():
    with pytest.raises(ValueError, match="margins"):
        theory.flip_masses(D, D[:3])


@pytest.mark.parametrize("dilation", [1.0, 0.5, 0.0, -2.0, math.nan])
def test_dilation(dilation):
    with pytest.raises(ValueError, match="dilation"):
        theory.condition_b_constant(D, dilation, 0.5, 0.1)
    with pytest.raises(ValueError, match="dilation"):
        theory.theorem_b_floor(D, 3, 1.0, 1.0, dilation=dilation, min_width=0.1, min_cluster_mass=0.0)
    with pytest.raises(ValueError, match="dilation"):
        theory.condition_b_envelope(2.0, dilation, 0.3, 0.0, 0.1, 2.0)


@pytest.mark.parametrize("gamma", [0.0, -1.0, math.nan])
def test_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        theory.condition_a_constant(D, 1.0, gamma, 1.0)
    with pytest.raises(ValueError, match="gamma"):
        theory.theorem_a_floor(D, 3, 1.0, 1.0, gamma)
    with pytest.raises(ValueError, match="gamma"):
        theory.condition_a_envelope(1.0, gamma, 1.0, 0.3)
