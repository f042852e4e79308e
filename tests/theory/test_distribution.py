"""Return types and devices of the margin-distribution functions (issue 16, see TESTING.md).

* `margin_cdf`, `good_mass` and `bad_mass` return a Python float for a float point and a tensor (one value per
  point) for a tensor of points; the mutation run found the float/tensor switch untested.
* "All functions return float64 results on the input's device": the weights ``μ`` and the query points must
  be made on the margins' device, not on torch's default device. This machine has no accelerator, so the
  default device is switched to ``meta`` (which holds no data): a tensor made on the default device instead
  of the input's device then breaks the computation, while the correct code never touches the default device.

Expected values are exact fractions of four margins, computed by hand.
"""

from __future__ import annotations

import pytest
import torch

from lightning_stability import theory

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
