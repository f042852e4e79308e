"""Tests of ``lightning_stability/theory/distribution.py`` (docs/theory.md §1): margins, cross entropy, masses, accuracy."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.exact_oracles import exact_accuracy
from tests.theory.oracles import (
    naive_bad_mass,
    naive_cdf,
    naive_cross_entropy,
    naive_good_mass,
    naive_margins,
    random_logits,
    random_weights,
)

# =====================================================================================================================
# From test_accuracy.py — §1 accuracy ``A = μ(G_0) = μ({k : δ_k > 0})``: a tie ``δ_k = 0`` is an ERROR.
#
# Every case below has ties of positive weight, so counting ``δ ≥ 0`` instead of ``δ > 0`` changes the
# value by at least one sample's weight and fails deterministically (no randomness is involved in the
# hand cases; the property test is derandomized by ``conftest.py`` and pinned by ``@example``).
# =====================================================================================================================


def _t(values):
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize(
    "margins, weights, expected",
    [
        # one tie among four, unweighted: only the strictly positive margin counts
        ([0.0, 1.0, -1.0, 0.0], None, Fraction(1, 4)),
        # all ties: nothing is classified correctly
        ([0.0, 0.0, 0.0], None, Fraction(0)),
        ([0.0], None, Fraction(0)),
        # negative zero is a tie too
        ([-0.0, 2.0], None, Fraction(1, 2)),
        # the smallest positive double is correct, the smallest negative one is not
        ([5e-324, -5e-324, 0.0, 0.0], None, Fraction(1, 4)),
        # weighted: mass of the strictly positive margins over the total
        ([0.0, 2.0, -1.0], [5.0, 1.0, 2.0], Fraction(1, 8)),
        ([0.0, 0.5, 0.0, 3.0], [1.0, 2.0, 3.0, 2.0], Fraction(4, 8)),
        # a weighted tie that carries almost all the mass
        ([0.0, 1.0], [1000.0, 1.0], Fraction(1, 1001)),
        # weighted, all ties
        ([0.0, 0.0], [3.0, 1.0], Fraction(0)),
        # zero-weight samples are ignored, whatever their margin (here a tie and a wrong one)
        ([0.0, -5.0, 3.0, 0.0], [0.0, 0.0, 1.0, 1.0], Fraction(1, 2)),
        ([7.0, 0.0], [0.0, 1.0], Fraction(0)),
        ([0.0, 7.0], [0.0, 2.0], Fraction(1)),
        # normalisation: scaling the weights changes nothing
        ([0.0, 1.0, 1.0, -2.0], [4.0, 4.0, 4.0, 4.0], Fraction(1, 2)),
    ],
)
def test_accuracy_exact_values(margins, weights, expected):
    d = _t(margins)
    w = None if weights is None else _t(weights)
    assert exact_accuracy(d, w) == expected  # the oracle agrees with the hand value
    got = theory.accuracy(d, weights=w)
    assert isinstance(got, float)
    assert got == pytest.approx(float(expected), abs=1e-15)


def test_accuracy_ties_are_errors_from_logits():
    """A logit tie between the true class and another gives δ = 0 and counts as misclassified."""
    logits = _t(
        [
            [2.0, 2.0, 0.0],  # tie with class 1 -> error
            [3.0, 1.0, 3.0],  # tie with class 2 -> error
            [5.0, 4.0, 4.0],  # strict maximum -> correct
            [1.0, 1.0, 1.0],  # all equal -> error
        ]
    )
    targets = torch.tensor([0, 0, 0, 2])
    d = theory.margins(logits, targets)
    assert d.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert theory.accuracy(d) == 0.25
    assert theory.accuracy(d, weights=_t([1.0, 1.0, 2.0, 0.0])) == 0.5


def test_accuracy_agrees_with_good_mass_cdf_and_certify_on_ties():
    d = _t([0.0, 0.0, 1.5, -0.5, 0.0, 2.0, 3.0, -1.0])
    w = _t([1.0, 2.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    for weights, expected in ((None, 3 / 8), (w, 3 / 8)):
        assert theory.accuracy(d, weights=weights) == pytest.approx(expected, abs=1e-15)
        assert theory.good_mass(d, 0.0, weights=weights) == pytest.approx(expected, abs=1e-15)
        assert 1.0 - theory.margin_cdf(d, 0.0, weights=weights) == pytest.approx(expected, abs=1e-15)
        report = theory.certify(d, 3, weights=weights, zetas=(0.5,), tau_fractions=(0.25,), gammas=(1.0,))
        assert report.accuracy == pytest.approx(expected, abs=1e-15)


MARGIN_VALUES = st.one_of(
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 0.5, -0.5, 1.0, -1.0, 3.0]),
    st.floats(-10, 10, allow_nan=False),
)


@st.composite
def margins_and_weights(draw):
    n = draw(st.integers(1, 12))
    d = draw(st.lists(MARGIN_VALUES, min_size=n, max_size=n))
    w = draw(st.one_of(st.none(), st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    if w is not None and sum(w) == 0:
        w[0] = 1
    return d, w


@given(margins_and_weights())
@example(([0.0, 0.0, 0.0, 0.0], None))  # all ties
@example(([0.0, 1.0, 1.0, 1.0], None))  # the tie case of Condition A
@example(([0.0, -0.0, 2.0], [1, 1, 0]))  # zero weight on the only correct sample
@example(([0.0, 3.0, -2.0], [4, 1, 0]))  # a heavy tie
@example(([5e-324, 0.0, -5e-324], [1, 1, 1]))
def test_accuracy_matches_exact_oracle(case):
    d, w = case
    margins = _t(d)
    weights = None if w is None else _t([float(x) for x in w])
    expected = exact_accuracy(margins, weights)
    got = theory.accuracy(margins, weights=weights)
    assert got == pytest.approx(float(expected), abs=1e-14)
    assert 0.0 <= got <= 1.0
    # the defining identity A = μ(G_0) = 1 − F(0)
    assert got == pytest.approx(theory.good_mass(margins, 0.0, weights=weights), abs=1e-14)


# =====================================================================================================================
# From test_margins_combined.py — The margin pass's one-pass `(δ, ℓ)` equals the separate functions, and validates like them.
# =====================================================================================================================


def test_margins_and_cross_entropy_equal_the_separate_functions():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 7, generator=generator) * 5
    targets = torch.randint(0, 7, (500,), generator=generator)
    margins, losses = theory.margins_and_cross_entropy(logits, targets)
    assert torch.equal(margins, theory.margins(logits, targets))
    assert torch.equal(losses, theory.per_sample_cross_entropy(logits, targets))
    assert margins.dtype == losses.dtype == torch.float64


def test_margins_and_cross_entropy_reject_bad_input():
    with pytest.raises(ValueError, match="logits"):
        theory.margins_and_cross_entropy(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="targets"):
        theory.margins_and_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3]))


# =====================================================================================================================
# From test_distribution.py — Return types and devices of the margin-distribution functions (issue 16, see TESTING.md).
#
# * `margin_cdf`, `good_mass` and `bad_mass` return a Python float for a float point and a tensor (one value per
#   point) for a tensor of points; the mutation run found the float/tensor switch untested.
# * "All functions return float64 results on the input's device": the weights ``μ`` and the query points must
#   be made on the margins' device, not on torch's default device. This machine has no accelerator, so the
#   default device is switched to ``meta`` (which holds no data): a tensor made on the default device instead
#   of the input's device then breaks the computation, while the correct code never touches the default device.
#
# Expected values are exact fractions of four margins, computed by hand.
# =====================================================================================================================


M = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float64)  # sorted: -1, 0.25, 0.5, 2
W = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)  # weights of 0.5, -1, 2, 0.25: total 10
POINTS = torch.tensor([-1.0, 0.0, 0.5, 3.0], dtype=torch.float64)


def test_scalar_point_gives_a_python_float():
    # F(1) = 3/4 (-1, 0.25, 0.5 are <= 1), μ(δ > 1) = 1/4, μ(δ < -1) = 0
    for fn, expected in ((theory.margin_cdf, 0.75), (theory.good_mass, 0.25), (theory.bad_mass, 0.0)):
        value = fn(M, 1.0)
        assert type(value) is float and value == expected, fn
    assert theory.margin_cdf(M, 0.0) == 0.25  # only -1 is <= 0
    assert theory.good_mass(M, 0.0) == 0.75
    assert theory.bad_mass(M, 0.5) == 0.25  # only -1 is < -0.5
    assert theory.margin_cdf(M, 0.5, weights=W) == pytest.approx(0.7, abs=1e-15)  # -1, 0.25, 0.5: (2 + 4 + 1)/10


def test_tensor_points_give_one_value_per_point():
    cdf = theory.margin_cdf(M, POINTS)
    good = theory.good_mass(M, POINTS)
    bad = theory.bad_mass(M, POINTS)
    for value in (cdf, good, bad):
        assert isinstance(value, torch.Tensor) and value.dtype == torch.float64 and value.shape == (4,)
    # F(x) = μ(δ ≤ x): -1 -> 1/4, 0 -> 1/4, 0.5 -> 3/4, 3 -> 1
    assert cdf.tolist() == [0.25, 0.25, 0.75, 1.0]
    assert good.tolist() == [0.75, 0.75, 0.25, 0.0]
    # μ(δ < −η): η = -1 -> δ < 1: 3/4; η = 0 -> δ < 0: 1/4; η = 0.5 -> δ < -0.5: 1/4; η = 3 -> δ < -3: 0
    assert bad.tolist() == [0.75, 0.25, 0.25, 0.0]
    # a single point as a tensor is still a tensor (of one value), not a float
    one = theory.margin_cdf(M, torch.tensor(0.5, dtype=torch.float64))
    assert isinstance(one, torch.Tensor) and one.tolist() == [0.75]
    one = theory.bad_mass(M, torch.tensor([0.5]))
    assert isinstance(one, torch.Tensor) and one.tolist() == [0.25]


def test_weighted_tensor_points():
    cdf = theory.margin_cdf(M, POINTS, weights=W)
    assert cdf.tolist() == pytest.approx([0.2, 0.2, 0.7, 1.0], abs=1e-15)
    bad = theory.bad_mass(M, POINTS, weights=W)
    assert bad.tolist() == pytest.approx([0.7, 0.2, 0.2, 0.0], abs=1e-15)


@pytest.fixture
def meta_default_device():
    with torch.device("meta"):
        yield


def test_accuracy_and_loss_bounds_stay_on_the_inputs_device(meta_default_device):
    assert theory.accuracy(M) == 0.75
    assert theory.accuracy(M, weights=W) == pytest.approx(0.8, abs=1e-15)
    lower, upper = theory.loss_bounds(M, 3)
    assert 0 < lower < upper


def test_flip_masses_stays_on_the_inputs_device(meta_default_device):
    assert theory.flip_masses(M, -M) == (0.75, 0.25)
    forgotten, learned = theory.flip_masses(M, -M, weights=W)
    assert (forgotten, learned) == pytest.approx((0.8, 0.2), abs=1e-15)


def test_sorted_margins_stay_on_the_inputs_device(meta_default_device):
    points = POINTS.clone()
    assert theory.margin_cdf(M, points).tolist() == [0.25, 0.25, 0.75, 1.0]
    assert theory.bad_mass(M, points).tolist() == [0.75, 0.25, 0.25, 0.0]
    assert theory.good_mass(M, points, weights=W).tolist() == pytest.approx([0.8, 0.8, 0.3, 0.0], abs=1e-15)
    sorted_margins = theory.SortedMargins(M, W)
    assert sorted_margins.quantile_value(0.5) == 0.25  # F(0.25) = (2 + 4)/10 >= 1/2
    assert sorted_margins.mass_below(points).tolist() == pytest.approx([0.0, 0.2, 0.6, 1.0], abs=1e-15)
    assert sorted_margins.cdf_at_values().tolist() == pytest.approx([0.2, 0.6, 0.7, 1.0], abs=1e-15)
    unweighted = theory.SortedMargins(M)
    assert unweighted.cumulative.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert unweighted.quantile_value(0.5) == 0.25


LOGITS = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
TARGETS = torch.tensor([1, 0])


def test_margins_and_cross_entropy_stay_on_the_inputs_device(meta_default_device):
    margins, losses = theory.margins_and_cross_entropy(LOGITS, TARGETS)
    assert margins.tolist() == [1.0, -3.0]
    assert losses.device.type == "cpu" and theory.margins(LOGITS, TARGETS).tolist() == [1.0, -3.0]


def test_a_float_point_is_compared_in_float64():
    # float32(0.7) < 0.7: a point rounded to float32 would leave the margin 0.7 out of F(0.7) = μ(δ ≤ 0.7)
    margins = torch.tensor([0.7, 0.1], dtype=torch.float64)
    assert theory.margin_cdf(margins, 0.7) == 1.0
    assert theory.good_mass(margins, 0.7) == 0.0
    assert theory.bad_mass(margins, -0.7) == 0.5  # μ(δ < 0.7): only 0.1
    assert theory.bad_mass(-margins, 0.7) == 0.0  # μ(δ < -0.7) with δ = -0.7, -0.1: none


def test_sorted_margins_attributes():
    sorted_margins = theory.SortedMargins(M, W)
    assert sorted_margins.values.tolist() == [-1.0, 0.25, 0.5, 2.0]
    assert sorted_margins.indices.tolist() == [1, 3, 0, 2]
    assert sorted_margins.weights.tolist() == pytest.approx([0.2, 0.4, 0.1, 0.3], abs=1e-15)  # normalised μ
    assert len(sorted_margins) == 4 and sorted_margins.minimum == -1.0
    zero_weight = theory.SortedMargins(M, torch.tensor([1.0, 0.0, 1.0, 2.0], dtype=torch.float64))
    assert zero_weight.values.tolist() == [0.25, 0.5, 2.0] and zero_weight.indices.tolist() == [3, 0, 2]
    assert zero_weight.weights.tolist() == [0.5, 0.25, 0.25]


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.float16])
def test_results_are_float64_whatever_the_input_dtype(dtype):
    margins = torch.tensor([2, -1, 0, 1]).to(dtype)
    weights = torch.tensor([1, 2, 3, 2]).to(dtype)  # total 8: every mass is an exact dyadic fraction
    sorted_margins = theory.SortedMargins(margins, weights)
    assert sorted_margins.values.dtype == torch.float64 and sorted_margins.cumulative.dtype == torch.float64
    assert sorted_margins.cumulative.tolist() == [0.25, 0.625, 0.875, 1.0]  # -1: 2, 0: 3, 1: 2, 2: 1 (of 8)
    cdf = theory.margin_cdf(margins, torch.tensor([0.5, 1.5], dtype=torch.float64), weights=weights)
    assert cdf.dtype == torch.float64 and cdf.tolist() == [0.625, 0.875]
    plain = theory.margin_cdf(margins, torch.tensor([0.5], dtype=torch.float64))
    assert plain.dtype == torch.float64 and plain.tolist() == [0.5]


def test_float32_weights_are_cumulated_in_float64():
    # 0.1 in float32 is 0.100000001490116...; the cumulative masses are exact ratios of those float32 values,
    # summed in float64 (float32 sums would be off in the 8th digit)
    weights = torch.full((10,), 0.1, dtype=torch.float32)
    margins = torch.arange(10, dtype=torch.float64)
    sorted_margins = theory.SortedMargins(margins, weights)
    assert sorted_margins.cumulative.tolist() == [(k + 1) / 10 for k in range(10)]


def test_sorted_margins_error_names_margins_by_default():
    with pytest.raises(ValueError, match=r"`margins` contains NaN or inf"):
        theory.SortedMargins(torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match=r"`projections` contains NaN or inf"):
        theory.SortedMargins(torch.tensor([0.5, float("nan")]), name="projections")


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.float32])
def test_threshold_tensors_of_any_real_dtype_are_read_as_numbers(dtype):
    etas = torch.tensor([0, 1, 2]).to(dtype)
    # μ(δ < −η) for η = 0, 1, 2 (only −1 is < 0; nothing is < −1)
    assert theory.bad_mass(M, etas).tolist() == [0.25, 0.0, 0.0]
    assert theory.good_mass(M, etas).tolist() == [0.75, 0.25, 0.0]  # δ > 0, δ > 1, δ > 2
    assert theory.margin_cdf(M, etas).tolist() == [0.25, 0.75, 1.0]


def test_ties_keep_the_callers_order():
    # a stable sort: within a block of equal margins the positions stay increasing (reproducible indices)
    generator = torch.Generator().manual_seed(0)
    margins = torch.randint(0, 5, (200,), generator=generator).to(torch.float64)
    sorted_margins = theory.SortedMargins(margins)
    for value in range(5):
        block = sorted_margins.indices[sorted_margins.values == value]
        assert block.tolist() == sorted(block.tolist())
        assert block.tolist() == (margins == value).nonzero().squeeze(1).tolist()


def test_points_of_another_dtype():
    sorted_margins = theory.SortedMargins(M)
    for points in (torch.tensor([0.5, -2.0], dtype=torch.float32), torch.tensor([0, 2])):
        cdf = sorted_margins.cdf(points)
        below = sorted_margins.mass_below(points)
        assert cdf.dtype == torch.float64 and below.dtype == torch.float64
    assert sorted_margins.cdf(torch.tensor([0.5, -2.0], dtype=torch.float32)).tolist() == [0.75, 0.0]
    assert sorted_margins.mass_below(torch.tensor([0.5, -2.0], dtype=torch.float32)).tolist() == [0.5, 0.0]
    assert sorted_margins.cdf(torch.tensor([0, 2])).tolist() == [0.25, 1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64])
def test_weights_of_any_real_dtype_are_normalised_in_float64(dtype):
    margins = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    weights = torch.ones(3).to(dtype)
    assert theory.accuracy(margins, weights=weights) == 2 / 3  # float32 weights would give 0.6666666865…
    assert theory.flip_masses(margins, -margins, weights=weights) == (2 / 3, 1 / 3)
    lower, _ = theory.loss_bounds(margins, 2, weights=weights)
    assert lower == pytest.approx(theory.loss_bounds(margins, 2)[0], rel=1e-15)


# =====================================================================================================================
# From test_sandwich.py — §1 margins, per-sample cross entropy and masses against naive loops (its loss tests are in test_loss.py).
# =====================================================================================================================


SEEDS = st.integers(0, 2**32 - 1)


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
