"""Tests of ``lightning_stability/theory/validation.py``: bad input raises ValueError naming the offending argument;
the last part holds the tests of the mutation campaign (issue 16, recorded in TESTING.md)."""

from __future__ import annotations

import math
import re

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


# =====================================================================================================================
# From test_mutation_kills_validation.py — Input checks that the mutation run of issue 16 showed untested (see TESTING.md).
#
# Every public function of `lightning_stability.theory` promises a `ValueError` that *names the offending
# argument* (theory/validation.py). The older tests matched the bare word (``match="gamma"``), which a message
# naming ``XXgammaXX`` or ``None`` still passes; here the argument is matched with its backticks, exactly as
# the messages quote it. Also: wrong target dtypes and non-tensor arguments must be a `ValueError`, not a
# crash further down.
# =====================================================================================================================


Z3 = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 0.0, 1.0]], dtype=torch.float64)
Y3 = torch.tensor([1, 2, 0])


def named(name: str) -> str:
    """Regex for the argument name as the messages quote it: in backticks, case-sensitive."""
    return re.escape(f"`{name}`")


# (call, argument the message must name)
NAMED_ARGUMENT_CASES = [
    (lambda: theory.condition_a_constant(D, math.nan, 1.0, 1.0), "eta"),
    (lambda: theory.condition_a_constant(D, math.inf, 1.0, 1.0), "eta"),
    (lambda: theory.condition_a_constant(D, 1.0, -1.0, 1.0), "gamma"),
    (lambda: theory.condition_a_constant(D, 1.0, 1.0, 0.0), "lam0"),
    (lambda: theory.condition_a_constant(D, 1.0, 1.0, math.nan), "lam0"),
    (lambda: theory.condition_a_envelope(1.0, 0.0, 1.0, 0.5), "gamma"),
    (lambda: theory.condition_a_envelope(1.0, 1.0, -1.0, 0.5), "lam0"),
    (lambda: theory.condition_a_envelope(1.0, 1.0, 1.0, -0.5), "zeta"),
    (lambda: theory.condition_a_envelope(-1.0, 1.0, 1.0, 0.5), "constant"),
    (lambda: theory.condition_a_envelope(math.nan, 1.0, 1.0, 0.5), "constant"),
    (lambda: theory.theorem_a_floor(D, 3, 1.0, 1.0, 0.0), "gamma"),
    (lambda: theory.theorem_a_floor(D, 3, 1.0, 1.0, 1.0, lam0=0.0), "lam0"),
    (lambda: theory.theorem_a_floor(D, 3, 1.0, 1.0, 1.0, lam0=-2.0), "lam0"),
    (lambda: theory.theorem_a_floor(D, 3, math.nan, 1.0, 1.0), "eta"),
    (lambda: theory.theorem_a_floor(D, 3, 1.0, math.inf, 1.0), "eta0"),
    (lambda: theory.theorem_a_floor(D, 3, 1.0, 1.0, 1.0, partition_size=0), "partition_size"),
    (lambda: theory.margin_cdf(D, math.nan), "x"),
    (lambda: theory.margin_cdf(D, torch.tensor([0.0, math.inf])), "x"),
    (lambda: theory.good_mass(D, math.nan), "eta"),
    (lambda: theory.bad_mass(D, math.nan), "eta"),
    (lambda: theory.bad_mass(D, torch.tensor([math.nan])), "eta"),
    (lambda: theory.flip_masses(torch.tensor([0.5, math.nan]), torch.tensor([0.5, 1.0])), "previous_margins"),
    (lambda: theory.flip_masses(torch.tensor([0.5, 1.0]), torch.tensor([0.5, math.nan])), "margins"),
    (lambda: theory.instability_event(math.nan, 0.5, 1.0, 0.5), "previous_loss"),
    (lambda: theory.instability_event(1.0, math.inf, 1.0, 0.5), "previous_accuracy"),
    (lambda: theory.instability_event(1.0, 0.5, math.nan, 0.5), "loss"),
    (lambda: theory.instability_event(1.0, 0.5, 1.0, math.nan), "accuracy"),
    (lambda: theory.instability_event(1.0, 0.5, 1.0, 0.5, tol=-0.1), "tol"),
    (lambda: theory.instability_event(1.0, 0.5, 1.0, 0.5, tol=math.nan), "tol"),
    (lambda: theory.loss_rose(math.nan, 1.0), "previous_loss"),
    (lambda: theory.loss_rose(1.0, math.inf), "loss"),
    (lambda: theory.loss_floor(-1.0), "loss"),
    (lambda: theory.loss_floor(math.nan), "loss"),
    (lambda: theory.loss_floor(1.0, eta=math.nan), "eta"),
    (lambda: theory.envelope_loss_bound(torch.zeros_like, math.nan, 1.0, 3), "eta"),
    (lambda: theory.envelope_loss_bound(torch.zeros_like, 1.0, math.nan, 3), "eta0"),
    (lambda: theory.envelope_loss_bound(torch.zeros_like, 1.0, 1.0, 3, partition_size=0), "partition_size"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.0, 0.1), "max_mass"),
    (lambda: theory.condition_b_constant(D, 2.0, 1.5, 0.1), "max_mass"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.0), "min_width"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.1, min_cluster_mass=-0.1), "min_cluster_mass"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.1, min_cluster_mass=0.6), "min_cluster_mass"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.1, window_end=math.nan), "window_end"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.1, window_end=-math.inf), "window_end"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.1, radius_ratio=2.0), "radius_ratio"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.1, radius_ratio=1.0), "radius_ratio"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.1, radius_ratio=math.nan), "radius_ratio"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.1, centre_spacing=0.0), "centre_spacing"),
    (lambda: theory.condition_b_constant(D, 2.0, 0.5, 0.1, centre_spacing=0.2), "centre_spacing"),
    (lambda: theory.condition_b_constant(D, math.nan, 0.5, 0.1), "dilation"),
    (lambda: theory.condition_b_envelope(0.5, 2.0, 0.3, 0.0, 0.1, 2.0), "kappa"),
    (lambda: theory.condition_b_envelope(math.nan, 2.0, 0.3, 0.0, 0.1, 2.0), "kappa"),
    (lambda: theory.condition_b_envelope(2.0, math.nan, 0.3, 0.0, 0.1, 2.0), "dilation"),
    (lambda: theory.condition_b_envelope(2.0, 1.0, 0.3, 0.0, 0.1, 2.0), "dilation"),
    (lambda: theory.condition_b_envelope(2.0, 2.0, -0.3, 0.0, 0.1, 2.0), "zeta"),
    (lambda: theory.condition_b_envelope(2.0, 2.0, 0.3, -0.1, 0.1, 2.0), "min_cluster_mass"),
    (lambda: theory.condition_b_envelope(2.0, 2.0, 0.3, 0.0, 0.0, 2.0), "min_width"),
    (lambda: theory.condition_b_envelope(2.0, 2.0, 0.3, 0.0, 0.1, 0.0), "span"),
    (lambda: theory.theorem_b_floor(D, 3, 1.0, 1.0, partition_size=0), "partition_size"),
    (lambda: theory.certify(D, 3, loss=-1.0), "loss"),
    (lambda: theory.certify(D, 3, loss=math.nan), "loss"),
    (lambda: theory.margins(Z3, Y3.float()), "targets"),
    (lambda: theory.margins(Z3.long(), Y3), "logits"),
    (lambda: theory.margins(Z3, torch.tensor([1, 2])), "targets"),
    (lambda: theory.loss_bounds(torch.ones(2, 2), 3), "margins"),
    (lambda: theory.loss_bounds(torch.tensor([True, False]), 3), "margins"),
    (lambda: theory.loss_bounds(torch.tensor([1 + 1j, 2 + 0j]), 3), "margins"),
    (lambda: theory.loss_bounds([0.5, 1.0], 3), "margins"),
    (lambda: theory.loss_bounds(D, 3, weights=[1.0, 1.0, 1.0, 1.0]), "weights"),
    (lambda: theory.condition_b_constant(torch.tensor([0.5, math.nan]), 2.0, 0.5, 0.1), "values"),
    (lambda: theory.condition_b_constant(D, 1.0, 0.5, 0.1), "dilation"),
    (lambda: theory.theorem_b_floor(D, 3, 1.0, 1.0, dilation=1.0, radius_ratio=1.05), "dilation"),
]


@pytest.mark.parametrize("case", range(len(NAMED_ARGUMENT_CASES)))
def test_error_names_the_argument_in_backticks(case):
    call, name = NAMED_ARGUMENT_CASES[case]
    with pytest.raises(ValueError, match=named(name)):
        call()


@pytest.mark.parametrize(
    "grid_override,name",
    [
        (dict(zetas=()), "zetas"),
        (dict(zetas=(0.0,)), "zetas"),
        (dict(zetas=(1.5,)), "zetas"),
        (dict(gammas=(math.nan,)), "gammas"),
        (dict(cluster_mass_fractions=(1.5,)), "cluster_mass_fractions"),
        (dict(cluster_mass_fractions=(-0.5,)), "cluster_mass_fractions"),
        (dict(dilation=1.0), "dilation"),
        (dict(radius_ratio=2.0), "radius_ratio"),
        (dict(radius_ratio=1.0), "radius_ratio"),
        (dict(centre_spacing_fraction=0.0), "centre_spacing_fraction"),
        (dict(centre_spacing_fraction=1.5), "centre_spacing_fraction"),
        (dict(partition_size=0), "partition_size"),
        (dict(search_partition_size=0), "search_partition_size"),
    ],
)
def test_certificate_grid_errors_name_the_grid(grid_override, name):
    with pytest.raises(ValueError, match=named(name)):
        theory.CertificateGrid(**grid_override)


@pytest.mark.parametrize("name", ["tau_fractions", "gammas", "width_fractions"])
@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_certificate_grid_positive_grids(name, bad):
    with pytest.raises(ValueError, match=named(name)):
        theory.CertificateGrid(**{name: (1.0, bad)})
    theory.CertificateGrid(**{name: (1.0, 0.5)})  # positive values pass


def test_non_tensor_targets_or_logits_are_a_value_error():
    with pytest.raises(ValueError, match=r"`logits` and `targets` must be torch tensors"):
        theory.margins(Z3, [1, 2, 0])
    with pytest.raises(ValueError, match=r"`logits` and `targets` must be torch tensors"):
        theory.margins(Z3.tolist(), Y3)
    with pytest.raises(ValueError, match=r"`logits` and `targets` must be torch tensors"):
        theory.per_sample_cross_entropy(Z3, (1, 2, 0))


@pytest.mark.parametrize(
    "targets",
    [
        torch.tensor([True, False, True]),
        torch.tensor([1.0, 2.0, 0.0]),
        torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64),
        torch.tensor([1 + 0j, 2 + 0j, 0j]),
    ],
)
@pytest.mark.parametrize("fn", [theory.margins, theory.per_sample_cross_entropy, theory.margins_and_cross_entropy])
def test_non_integer_targets_are_refused(fn, targets):
    with pytest.raises(ValueError, match=r"`targets` must hold integer class indices, got dtype"):
        fn(Z3, targets)


def test_integer_logits_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"`logits` must be a floating point tensor, got dtype torch\.int64"):
        theory.margins(Z3.long(), Y3)


def test_non_finite_logits_message_counts_rows_and_names_the_first():
    logits = Z3.clone()
    logits[1, 0] = math.nan
    logits[2, 2] = math.inf
    with pytest.raises(ValueError, match=r"`logits` contains NaN or inf in 2 row\(s\) \(first: row 1\)"):
        theory.margins(logits, Y3)


def test_empty_and_one_column_logits():
    with pytest.raises(ValueError, match=r"`logits` is empty \(N = 0\)"):
        theory.margins(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`logits` has K=1 column"):
        theory.margins(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))


def test_out_of_range_targets_report_the_range():
    with pytest.raises(ValueError, match=r"`targets` must lie in \[0, K\) = \[0, 3\), got values in \[1, 3\]"):
        theory.margins(Z3, torch.tensor([1, 3, 2]))
    with pytest.raises(ValueError, match=r"got values in \[-1, 2\]"):
        theory.margins(Z3, torch.tensor([-1, 2, 0]))


def test_num_classes_type_and_range():
    for bad in (2.0, True, "3", None):
        with pytest.raises(ValueError, match=r"`num_classes` must be an integer K >= 2"):
            theory.loss_bounds(D, bad)
    with pytest.raises(ValueError, match=r"`num_classes` must be at least 2"):
        theory.loss_bounds(D, 1)
    assert theory.loss_bounds(D, torch.tensor(3)) == theory.loss_bounds(D, 3)  # an integer tensor is an index


def test_weights_messages():
    with pytest.raises(ValueError, match=r"`weights` must be None or a 1-D torch tensor, got list"):
        theory.accuracy(D, weights=[1.0] * 4)
    with pytest.raises(ValueError, match=r"`weights` contains negative entries"):
        theory.accuracy(D, weights=torch.tensor([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"`weights` sum to zero"):
        theory.accuracy(D, weights=torch.zeros(4))
    with pytest.raises(ValueError, match=r"`weights` contains NaN or inf"):
        theory.accuracy(D, weights=torch.tensor([1.0, math.inf, 1.0, 1.0]))


def test_values_messages():
    with pytest.raises(ValueError, match=r"`margins` must be a 1-D torch tensor, got list"):
        theory.accuracy([0.5])
    with pytest.raises(ValueError, match=r"`margins` must be 1-D \(one value per sample\), got shape \(2, 2\)"):
        theory.accuracy(torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"`margins` is empty"):
        theory.accuracy(torch.zeros(0))
    with pytest.raises(ValueError, match=r"`margins` must be real numbers, got dtype torch\.bool"):
        theory.accuracy(torch.tensor([True]))
    with pytest.raises(ValueError, match=r"`margins` contains NaN or inf"):
        theory.accuracy(torch.tensor([0.5, -math.inf]))


def test_strictness_of_positive_checks():
    # tol may be 0 (non-strict), gamma may not (strict)
    assert theory.instability_event(1.0, 0.9, 0.5, 0.8, tol=0.0) is True
    with pytest.raises(ValueError, match=r"`gamma` must be > 0, got 0\.0"):
        theory.condition_a_constant(D, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"`tol` must be >= 0, got -0\.5"):
        theory.instability_event(1.0, 0.9, 0.5, 0.8, tol=-0.5)
    with pytest.raises(ValueError, match=r"`eta` must be a real number, got 'a'"):
        theory.loss_floor(1.0, eta="a")
    with pytest.raises(ValueError, match=r"`eta` must be finite, got inf"):
        theory.loss_floor(1.0, eta=math.inf)


def test_flip_masses_shape_mismatch_message():
    with pytest.raises(
        ValueError, match=r"`previous_margins` \(4,\) and `margins` \(3,\) must describe the same samples in the same"
    ):
        theory.flip_masses(D, D[:3])
