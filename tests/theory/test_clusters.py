"""Tests of ``lightning_stability/theory/clusters.py``: the data check of docs/theory.md §9 against brute force,
planted clusters and bad input; the last part holds the tests of the mutation campaign (issue 16, recorded in
TESTING.md) against hand-written expectations."""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from lightning_stability import theory
from lightning_stability.theory import clusters as clusters_module
from tests.theory.oracles import brute_kappa


def _angles(count: int) -> torch.Tensor:
    angles = torch.arange(count, dtype=torch.float64) * math.pi / count
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def test_brute_force_over_a_fine_grid_of_directions_in_2d():
    generator = torch.Generator().manual_seed(3)
    points = torch.cat([torch.randn(7, 2, generator=generator), torch.randn(3, 2, generator=generator) * 0.1 + 3])
    directions = _angles(16)
    settings = dict(dilation=1.7, max_mass=0.6, min_cluster_mass=0.2)
    report = theory.data_clusters(
        points, n_random=0, n_principal=0, extra_directions=directions, resolution=0.15, **settings
    )
    brute = []
    for index, direction in enumerate(directions):
        projections = points.double() @ direction
        exact, _ = brute_kappa(
            projections,
            settings["dilation"],
            settings["max_mass"],
            float(report.resolutions[index]),
            settings["min_cluster_mass"],
        )
        assert float(report.lower[index]) <= exact * (1 + 1e-9)
        assert exact <= float(report.upper[index]) * (1 + 1e-9)
        brute.append(exact)
    assert report.constant_lower <= min(brute) * (1 + 1e-9) <= report.constant_upper * (1 + 1e-9)
    # the three points near (3, 3) form an isolated cluster of mass 0.3 >= m_min along most directions
    assert report.violated


def test_planted_isolated_cluster_is_found_with_its_exact_indices():
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(3000, 10, generator=generator)
    direction = torch.randn(10, generator=generator)
    direction /= direction.norm()
    planted = torch.arange(100, 125)
    data[planted] = 8 * direction + 0.05 * torch.randn(25, 10, generator=generator)
    report = theory.data_clusters(data, n_random=32, n_principal=4)
    assert report.violated
    assert report.constant_upper == pytest.approx(1.0)
    assert report.witness_indices.tolist() == planted.tolist()
    projections = data.double() @ report.worst_direction
    centre, radius = report.witness
    inside = ((projections - centre).abs() <= radius).nonzero().squeeze(1)
    assert inside.tolist() == planted.tolist()
    assert int(((projections - centre).abs() <= report.dilation * radius).sum()) == 25  # isolated: Λ·slab adds nothing


def test_well_spread_data_has_a_constant_above_one_on_every_sampled_direction():
    data = torch.randn(10_000, 5, generator=torch.Generator().manual_seed(1))
    report = theory.data_clusters(data, n_random=48, n_principal=5)
    assert not report.violated
    assert bool((report.upper > 1).all())
    assert report.constant_lower > 1  # certified on every sampled direction
    assert report.witness_indices.numel() > 0  # the least-ratio slab is still reported


def test_streaming_equals_in_memory():
    generator = torch.Generator().manual_seed(5)
    data = torch.randn(1200, 3, 4, generator=generator)
    labels = torch.randint(0, 3, (1200,), generator=generator)
    in_memory = theory.data_clusters(data, n_random=16, n_principal=3, batch_size=10_000)
    for streamed_input in (TensorDataset(data, labels), DataLoader(TensorDataset(data, labels), batch_size=333)):
        streamed = theory.data_clusters(streamed_input, n_random=16, n_principal=3, batch_size=100)
        torch.testing.assert_close(streamed.lower, in_memory.lower, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(streamed.upper, in_memory.upper, rtol=1e-9, atol=1e-12)
        assert streamed.witness_indices.tolist() == in_memory.witness_indices.tolist()
        assert streamed.num_samples == 1200


def test_more_directions_can_only_lower_the_estimate():
    data = torch.randn(800, 6, generator=torch.Generator().manual_seed(2))
    few = theory.data_clusters(data, n_random=8, n_principal=0)
    extra = torch.randn(20, 6, generator=torch.Generator().manual_seed(9))
    more = theory.data_clusters(data, n_random=8, n_principal=0, extra_directions=extra)
    assert more.constant_upper <= few.constant_upper and more.constant_lower <= few.constant_lower
    assert more.kinds.count("extra") == 20


def test_weights_scale_invariance():
    data = torch.randn(500, 4, generator=torch.Generator().manual_seed(4))
    weights = torch.rand(500, generator=torch.Generator().manual_seed(4)) + 0.1
    first = theory.data_clusters(data, weights, n_random=8, n_principal=2)
    second = theory.data_clusters(data, weights * 7.5, n_random=8, n_principal=2)
    torch.testing.assert_close(first.upper, second.upper)


class _Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(3)


@pytest.mark.parametrize(
    ("inputs", "kwargs", "match"),
    [
        (torch.tensor([[0.0, float("nan")]] * 3), {}, "NaN"),
        (torch.zeros(0, 3), {}, "non-empty"),
        (torch.randn(20, 3), {"dilation": 1.0}, "dilation"),
        (torch.randn(20, 3), {"max_mass": 1.5}, "max_mass"),
        (torch.randn(20, 3), {"resolution": 0.0}, "resolution"),
        (torch.randn(20, 3), {"extra_directions": torch.randn(2, 4)}, "extra_directions"),
        (torch.randn(20, 3), {"extra_directions": torch.zeros(1, 3)}, "norm zero"),
        (torch.randn(20, 3), {"n_random": 0, "n_principal": 0}, "no directions"),
        (torch.randn(20, 3), {"min_cluster_mass": 0.9}, "min_cluster_mass"),
        (_Stream(), {}, "IterableDataset"),
        ("pixels", {}, "tensor"),
    ],
)
def test_bad_inputs_are_rejected_with_a_clear_message(inputs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        theory.data_clusters(inputs, **kwargs)


# =====================================================================================================================
# From test_mutation_kills_clusters.py — `data_clusters` (theory/clusters.py) against hand-written expectations (issue 16, see TESTING.md).
#
# The first mutation run over ``clusters.py`` left 136 of its 461 mutants alive: the older tests
# (`test_clusters.py`) check that the bracket contains a brute-force ``κ_B`` on random data and that planted
# clusters are found, which a changed default, a dropped argument, a wrong principal direction or a swapped
# spread still passes. This file pins:
#
# * the per-direction brackets against `grid_bracket`, the docstring of `condition_b_constant` recomputed with
#   Fractions for the grid centres `data_clusters` uses (dyadic data, so only the masses ``k/N`` are rounded),
#   with and without sample weights — which checks that ``dilation``, ``max_mass``, ``min_cluster_mass``,
#   ``radius_ratio``, the centre spacing and the weights reach every direction;
# * each direction's ``h`` = ``resolution`` × the 5 %–95 % quantile range (numpy), and its two fallbacks;
# * the random directions (``torch.randn`` with the seed, normalised), the principal ones (numpy ``eigh`` of the
#   covariance), the caller's (normalised), the ``kinds`` and every default (256, 16, ``Λ = 2``, seed 0,
#   ``m_min = min(m, max(10/N, 0.005))``, batches of 4096, seen through the dataset's ``__getitems__``);
# * every `ValueError` by its full message (the older tests matched one word, which ``XX…XX`` and
#   upper-cased messages still contain), the limits of each check (``Λ = 1`` refused, ``m = 1``,
#   ``centre_fraction = 1``, ``m_min = 0`` and ``m_min = m`` accepted, ``batch_size = 1``), and the streaming
#   corner cases (a tensor in several batches, a dataset whose length or width changes between the two passes);
# * float64 for ``lower``, ``upper`` and ``resolutions``, and the settings echoed by the report.
# =====================================================================================================================


OUTWARD = Fraction(1) - Fraction(1, 10**12)


def message(text: str) -> str:
    """Regex matching ``text`` literally from the start of the message."""
    return "^" + re.escape(text)


# ---------------------------------------------------------------------------
# κ_lo and κ_hi on the centre grid bℤ, from the docstring of condition_b_constant, in Fractions
# ---------------------------------------------------------------------------


def grid_bracket(values, weights, dilation, max_mass, width, min_mass, ratio, spacing):
    """``(κ_lo, κ_hi)`` without a window: radii ``r_i = (h/2) q^i`` up to the first ``≥`` the top radius
    ``max(h/2, span/(Λ−1), span/2)`` (at least two); ``κ_hi`` = least ``μ([c ± Λr_i])/μ([c ± r_i])``, ``κ_lo`` =
    least ``μ([c ± (Λr_i − b/2)])/μ([c ± (r_{i+1} + b/2)])`` over ``c ∈ bℤ`` with ``μ(num) ≤ m``,
    ``μ(den) ≥ m_min``, ``μ(den) > 0``; the tail ``M_w/μ(δ ≤ ∞) = 1`` when ``m ≥ 1``; then
    ``max(1, κ_lo (1 − 1e-12))``, at most ``κ_hi``."""
    raw = [Fraction(w) for w in weights]
    total = sum(raw, Fraction(0))
    pairs = sorted((Fraction(v), w / total) for v, w in zip(values, raw) if w > 0)
    points = [v for v, _ in pairs]
    cumulative = [Fraction(0)]
    for _, w in pairs:
        cumulative.append(cumulative[-1] + w)

    def mass(low, high):
        return cumulative[bisect_right(points, high)] - cumulative[bisect_left(points, low)]

    L, m, m_min, q, b = (Fraction(x) for x in (dilation, max_mass, min_mass, ratio, spacing))
    small = Fraction(width) / 2
    span = points[-1] - points[0]
    top = max(small, span / (L - 1), span / 2)
    radii = [small]
    while len(radii) < 2 or radii[-1] < top:
        radii.append(radii[-1] * q)
    reach = L * radii[-1] + b
    centres = [k * b for k in range(math.floor((points[0] - reach) / b), math.ceil((points[-1] + reach) / b) + 1)]

    def least(num_radius, den_radius):
        best = math.inf
        for c in centres:
            num, den = mass(c - num_radius, c + num_radius), mass(c - den_radius, c + den_radius)
            if num <= m and den >= m_min and den > 0:
                best = min(best, num / den)
        return best

    upper = min(least(L * r, r) for r in radii)
    lower = min(least(max(L * r - b / 2, Fraction(0)), radii[i + 1] + b / 2) for i, r in enumerate(radii[:-1]))
    if m >= 1:
        lower = min(lower, Fraction(1))
    if lower != math.inf:
        lower = max(Fraction(1), lower * OUTWARD)
    return min(lower, upper), upper


# two coordinates of 21 dyadic values, gaps of 1/8 to 3/8 (no isolated cluster); sorted[1] and sorted[19] are the
# 5 % and 95 % quantiles (rank 0.05 · 20 = 1), so h = resolution × 4.875 is exact
COLUMN_X = [
    -2.0,
    -1.75,
    -1.5,
    -1.375,
    -1.125,
    -0.75,
    -0.5,
    -0.25,
    0.0,
    0.375,
    0.75,
    0.875,
    1.25,
    1.5,
    1.875,
    2.25,
    2.5,
    2.75,
    3.0,
    3.125,
    3.5,
]
COLUMN_Y = [
    -2.0,
    -1.75,
    -1.625,
    -1.25,
    -1.0,
    -0.75,
    -0.375,
    -0.25,
    0.125,
    0.375,
    0.625,
    1.0,
    1.375,
    1.625,
    2.0,
    2.25,
    2.375,
    2.625,
    3.0,
    3.125,
    3.375,
]
WEIGHTS = [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 2]  # sum 32: every mass is exact
SPREADS = (4.875, 4.875)  # sorted[19] − sorted[1] of each column


def _shuffled_points():
    order = torch.randperm(21, generator=torch.Generator().manual_seed(7))
    points = torch.tensor([COLUMN_X, COLUMN_Y], dtype=torch.float64).T
    return points[order], torch.tensor(WEIGHTS, dtype=torch.float64)[order]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    ("dilation", "max_mass", "min_mass", "ratio"),
    [(3.0, 0.5, 0.125, 1.5), (2.0, 0.5, 0.0, 1.25), (2.5, 0.375, 0.1875, 1.75), (2.0, 1.0, 0.0, 1.25)],
)
def test_each_direction_is_the_grid_bracket_of_its_projections(weighted, dilation, max_mass, min_mass, ratio):
    points, weights = _shuffled_points()
    report = theory.data_clusters(
        points,
        weights if weighted else None,
        n_random=0,
        n_principal=0,
        extra_directions=torch.eye(2),
        dilation=dilation,
        max_mass=max_mass,
        min_cluster_mass=min_mass,
        resolution=0.125,
        radius_ratio=ratio,
    )
    assert report.kinds == ("extra", "extra")
    assert report.lower.dtype == report.upper.dtype == report.resolutions.dtype == torch.float64
    assert report.resolutions.tolist() == [0.125 * s for s in SPREADS]
    expected = []
    for column, spread in enumerate(SPREADS):
        width = 0.125 * spread
        lower, upper = grid_bracket(
            points[:, column].tolist(),
            weights.tolist() if weighted else [1] * 21,
            dilation,
            max_mass,
            width,
            min_mass,
            ratio,
            0.25 * width,
        )
        assert float(report.lower[column]) == pytest.approx(float(lower), rel=1e-14)
        assert float(report.upper[column]) == pytest.approx(float(upper), rel=1e-14)
        expected.append((float(lower), float(upper)))
    assert report.constant_lower == pytest.approx(min(lo for lo, _ in expected), rel=1e-14)
    assert report.constant_upper == pytest.approx(min(up for _, up in expected), rel=1e-14)
    worst = min(range(2), key=lambda j: (expected[j][1], j))
    assert report.worst_direction.tolist() == [float(worst == 0), float(worst == 1)]
    assert report.worst_direction_kind == "extra"
    assert (report.max_mass, report.min_cluster_mass, report.dilation) == (max_mass, min_mass, dilation)


def test_the_grid_bracket_depends_on_the_weights_and_the_radius_ratio():
    # guards the test above: its cases would notice weights ignored or the default q = 1.05 used instead
    points, weights = _shuffled_points()
    column = points[:, 0].tolist()
    width = 0.125 * 4.875
    uniform = grid_bracket(column, [1] * 21, 3.0, 0.5, width, 0.125, 1.5, width / 4)
    assert uniform == (Fraction(7, 6) * OUTWARD, Fraction(5, 3))  # a bracket strictly above 1
    assert grid_bracket(column, weights.tolist(), 3.0, 0.5, width, 0.125, 1.5, width / 4) != uniform
    assert grid_bracket(column, [1] * 21, 3.0, 0.5, width, 0.125, 1.05, width / 4) != uniform


def test_float64_results_keep_values_that_float32_would_round():
    points, _ = _shuffled_points()
    report = theory.data_clusters(
        points, n_random=0, n_principal=0, extra_directions=torch.eye(2), resolution=0.1, max_mass=0.5
    )
    width = 0.1 * 4.875  # not a float32
    assert float(torch.tensor(width, dtype=torch.float32)) != width
    assert report.resolutions.tolist() == [width, width]
    assert report.lower.dtype == report.upper.dtype == report.resolutions.dtype == torch.float64
    assert report.min_cluster_mass == 10 / 21  # min(m, max(10/N, 0.005))


# ---------------------------------------------------------------------------
# the resolution h of each direction
# ---------------------------------------------------------------------------


def _one_axis(values, **kwargs):
    inputs = torch.tensor(values, dtype=torch.float64).unsqueeze(1)
    return theory.data_clusters(inputs, n_random=0, n_principal=0, extra_directions=torch.ones(1, 1), **kwargs)


def test_resolution_is_the_5_to_95_percent_quantile_range():
    values = [0.3 * k * k - 2.0 for k in range(37)]
    report = _one_axis(values, resolution=0.2, max_mass=0.5)
    low, high = np.quantile(np.array(values), [0.05, 0.95])
    assert float(report.resolutions[0]) == pytest.approx(0.2 * (high - low), rel=1e-12)
    assert high - low < max(values) - min(values)  # the full range would be a different h


def test_resolution_falls_back_to_the_full_range_when_the_quantiles_coincide():
    # 95 of 100 values are 2: both quantiles are 2, so h comes from max − min = 11 − 1
    values = [1.0] + [2.0] * 95 + [5.0, 7.0, 9.0, 11.0]
    low, high = np.quantile(np.array(values), [0.05, 0.95])
    assert low == high == 2.0
    report = _one_axis(values, resolution=0.125, max_mass=0.5)
    assert report.resolutions.tolist() == [0.125 * 10.0]


def test_resolution_falls_back_to_one_when_all_projections_are_equal():
    report = _one_axis([3.0] * 12, resolution=0.25, max_mass=0.5)
    assert report.resolutions.tolist() == [0.25]


# ---------------------------------------------------------------------------
# directions and defaults
# ---------------------------------------------------------------------------


def test_defaults_directions_and_kinds():
    data = torch.randn(3, 17, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    report = theory.data_clusters(data)
    assert report.kinds == ("random",) * 256 + ("principal",) * 16
    expected = torch.randn(256, 17, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = expected / torch.linalg.vector_norm(expected, dim=1, keepdim=True)
    torch.testing.assert_close(report.directions[:256], expected, rtol=1e-14, atol=1e-15)
    assert report.dilation == 2.0
    assert report.max_mass == 0.05
    assert report.min_cluster_mass == 0.05  # min(m, max(10/3, 0.005))


@pytest.mark.parametrize(("n", "expected"), [(100, 0.1), (4000, 0.005)])
def test_default_min_cluster_mass_is_10_over_n_at_least_half_a_percent(n, expected):
    values = [float(k % 13) for k in range(n)]
    assert _one_axis(values, max_mass=0.5).min_cluster_mass == expected


def test_seed_and_count_of_random_directions():
    data = torch.randn(4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    report = theory.data_clusters(data, n_random=5, n_principal=0, seed=42)
    expected = torch.randn(5, 3, generator=torch.Generator().manual_seed(42), dtype=torch.float64)
    expected = expected / torch.linalg.vector_norm(expected, dim=1, keepdim=True)
    torch.testing.assert_close(report.directions, expected, rtol=1e-14, atol=1e-15)
    assert report.kinds == ("random",) * 5


def test_principal_directions_are_the_top_eigenvectors_of_the_covariance():
    generator = torch.Generator().manual_seed(5)
    scale = torch.tensor([5.0, 3.0, 1.5, 0.5], dtype=torch.float64)
    data = torch.randn(60, 4, generator=generator, dtype=torch.float64) * scale
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator, dtype=torch.float64))
    data = data @ rotation.T + torch.tensor([10.0, -4.0, 7.0, 2.0], dtype=torch.float64)  # far from centred
    array = data.numpy()
    centred = array - array.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(array))
    assert np.all(np.diff(eigenvalues) > 0.1)  # well separated: the eigenvectors are unique up to sign
    top = eigenvectors[:, ::-1].T
    report = theory.data_clusters(data, n_random=1, n_principal=2, batch_size=7)
    assert report.kinds == ("random", "principal", "principal")
    for row in range(2):
        assert abs(float(np.dot(report.directions[1 + row].numpy(), top[row]))) == pytest.approx(1.0, abs=1e-9)
    everything = theory.data_clusters(data, n_random=0, n_principal=9, extra_directions=torch.ones(1, 4))
    assert everything.kinds == ("principal",) * 4 + ("extra",)


def test_extra_directions_are_normalised_and_come_last():
    data = torch.randn(8, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    extra = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
    report = theory.data_clusters(data, n_random=1, n_principal=1, extra_directions=extra)
    assert report.kinds == ("random", "principal", "extra", "extra")
    assert report.directions[2:].tolist() == [[0.6, 0.8], [0.0, -1.0]]


def test_worst_direction_kind_is_reported():
    # an isolated pair along the second axis only: that extra direction is the worst
    points = torch.stack([torch.linspace(0.0, 1.0, 30), torch.zeros(30)], dim=1).double()
    points[28:, 1] = 10.0
    report = theory.data_clusters(
        points, n_random=0, n_principal=0, extra_directions=torch.eye(2), max_mass=0.1, min_cluster_mass=0.05
    )
    assert report.worst_direction_kind == "extra" and report.worst_direction.tolist() == [0.0, 1.0]
    assert report.witness_indices.tolist() == [28, 29]


# ---------------------------------------------------------------------------
# streaming
# ---------------------------------------------------------------------------


class _RecordingDataset(Dataset):
    """Map-style dataset that records the size of every batch the DataLoader fetches."""

    def __init__(self, values):
        self.values = values
        self.batches: list[int] = []

    def __len__(self):
        return self.values.shape[0]

    def __getitem__(self, index):
        return self.values[index]

    def __getitems__(self, indices):
        self.batches.append(len(indices))
        return [self.values[i] for i in indices]


def test_datasets_are_read_in_batches_of_4096_by_default():
    dataset = _RecordingDataset(torch.arange(4097, dtype=torch.float64).unsqueeze(1) % 17)
    report = theory.data_clusters(dataset, n_random=1, n_principal=0)
    assert dataset.batches == [4096, 1, 4096, 1]  # two passes: principal directions, then projections
    assert report.num_samples == 4097


def test_datasets_are_read_in_batches_of_batch_size():
    dataset = _RecordingDataset(torch.arange(10, dtype=torch.float64).unsqueeze(1))
    theory.data_clusters(dataset, n_random=1, n_principal=1, batch_size=4)
    assert dataset.batches == [4, 4, 2, 4, 4, 2]


def test_a_tensor_is_read_completely_in_several_batches():
    data = torch.randn(10, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    whole = theory.data_clusters(data, n_random=3, n_principal=0, batch_size=100)
    batched = theory.data_clusters(data, n_random=3, n_principal=0, batch_size=3)
    assert batched.num_samples == whole.num_samples == 10
    assert batched.lower.tolist() == whole.lower.tolist() and batched.upper.tolist() == whole.upper.tolist()


def test_limits_that_are_accepted():
    data = torch.randn(6, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    one = theory.data_clusters(data[:1], n_random=2, n_principal=1)
    assert one.num_samples == 1 and one.kinds == ("random", "random", "principal")
    assert theory.data_clusters(TensorDataset(data[:1]), n_random=1, n_principal=0).num_samples == 1
    assert theory.data_clusters(data, n_random=1, n_principal=0, batch_size=1).num_samples == 6
    assert theory.data_clusters(data, n_random=1, n_principal=0, max_mass=1.0).max_mass == 1.0
    assert theory.data_clusters(data, n_random=1, n_principal=0, centre_fraction=1.0).num_samples == 6
    assert theory.data_clusters(data, n_random=1, n_principal=0, min_cluster_mass=0.0).min_cluster_mass == 0.0
    same = theory.data_clusters(data, n_random=1, n_principal=0, max_mass=0.25, min_cluster_mass=0.25)
    assert same.min_cluster_mass == same.max_mass == 0.25


class _NoLength(Dataset):
    def __getitem__(self, index):
        return torch.zeros(2)


class _ShrinkingDataset(Dataset):
    """Five samples on the first pass, four on the second."""

    def __init__(self):
        self.calls = 0

    def __len__(self):
        return 5 if self.calls < 5 else 4

    def __getitem__(self, index):
        self.calls += 1
        return torch.tensor([float(index), 1.0])


class _WideningDataset(Dataset):
    """Three features on the first pass, four on the second."""

    def __init__(self):
        self.calls = 0

    def __len__(self):
        return 4

    def __getitem__(self, index):
        self.calls += 1
        return torch.full((3 if self.calls <= 4 else 4,), float(index))


def _huge():
    return torch.full((4, 2), 1.7e308, dtype=torch.float64)


_POINTS = torch.randn(20, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)

MESSAGE_CASES = [
    (_NoLength(), {}, "`inputs` is a dataset without `__len__`; pass a tensor or a finite DataLoader."),
    (TensorDataset(torch.zeros(0, 3)), {}, "`inputs` is an empty dataset."),
    (
        _Stream(),
        {},
        "`inputs` is an IterableDataset; pass a tensor, a map-style dataset or a finite DataLoader whose order "
        "is fixed (the indices of the witness samples refer to that order).",
    ),
    ("pixels", {}, "`inputs` must be a tensor, a map-style dataset or a DataLoader, got str."),
    (["a", "b"], {}, "`inputs` yielded a str; batches must be tensors or (x, y) tuples."),
    ([], {}, "`inputs` is empty; pass at least one sample."),
    ([torch.ones(2, 3), torch.ones(2, 4)], {}, "`inputs` batches have 4 features after 3 in an earlier batch."),
    ([torch.ones(2, 3), torch.ones(2, 4)], {"n_principal": 0}, "`inputs` batches have 4 features after 3"),
    (_WideningDataset, {"n_principal": 0}, "`inputs` batches have 4 features after 3 in an earlier batch."),
    (torch.tensor([[0.0, math.inf]] * 3), {}, "`inputs` contains NaN or inf; clean or impute the inputs first."),
    (
        _ShrinkingDataset,
        {"n_principal": 0},
        "`inputs` yielded a different number of samples on the second pass; use a fixed order.",
    ),
    (
        _huge(),
        {"n_principal": 0, "n_random": 0, "extra_directions": torch.ones(1, 2)},
        "`projections` contains NaN or inf",
    ),
    (_POINTS, {"dilation": 1.0}, "`dilation` Λ must be > 1 (a slab's dilation must be strictly wider), got 1.0."),
    (_POINTS, {"dilation": "wide"}, "`dilation` must be a real number, got 'wide'."),
    (_POINTS, {"dilation": math.nan}, "`dilation` must be finite, got nan."),
    (_POINTS, {"resolution": -0.5}, "`resolution` must be > 0, got -0.5."),
    (_POINTS, {"max_mass": 0.0}, "`max_mass` must be > 0, got 0.0."),
    (_POINTS, {"max_mass": 1.5}, "`max_mass` is a mass in (0, 1], got 1.5."),
    (_POINTS, {"centre_fraction": 0.0}, "`centre_fraction` must be > 0, got 0.0."),
    (_POINTS, {"centre_fraction": 1.5}, "`centre_fraction` must lie in (0, 1], got 1.5."),
    (_POINTS, {"n_random": -1}, "`n_random` must be a non-negative integer, got -1."),
    (_POINTS, {"n_random": 1.5}, "`n_random` must be a non-negative integer, got 1.5."),
    (_POINTS, {"n_principal": -2}, "`n_principal` must be a non-negative integer, got -2."),
    (_POINTS, {"batch_size": 0}, "`batch_size` must be a positive integer, got 0."),
    (_POINTS, {"extra_directions": torch.tensor([[1.0, math.nan, 0.0]])}, "`extra_directions` contains NaN or inf."),
    (
        _POINTS,
        {"n_random": 0, "n_principal": 0},
        "no directions to check: set `n_random`, `n_principal` or `extra_directions`.",
    ),
    (
        _POINTS,
        {"extra_directions": torch.zeros(1, 3)},
        "a direction has norm zero (e.g. a dead unit's weight row); drop it from `extra_directions`.",
    ),
    (_POINTS, {"min_cluster_mass": -0.01}, "`min_cluster_mass` must be >= 0, got -0.01."),
    (_POINTS, {"min_cluster_mass": 0.06}, "`min_cluster_mass` must lie in [0, max_mass=0.05], got 0.06."),
]


@pytest.mark.parametrize(("inputs", "kwargs", "text"), MESSAGE_CASES)
def test_every_refusal_has_its_full_message(inputs, kwargs, text):
    if isinstance(inputs, type):  # a dataset that changes between passes: a fresh one per run
        inputs = inputs()
    with pytest.raises(ValueError, match=message(text)):
        theory.data_clusters(inputs, **kwargs)


def test_more_than_max_pca_dimension_features_need_n_principal_0(monkeypatch):
    monkeypatch.setattr(clusters_module, "MAX_PCA_DIMENSION", 3)
    data = torch.randn(5, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    text = (
        "principal directions need the 4 × 4 covariance; for inputs with more than 3 features pass `n_principal=0` "
        "(random and `extra_directions` remain)."
    )
    with pytest.raises(ValueError, match=message(text)):
        theory.data_clusters(data, n_random=1, n_principal=1)
    assert theory.data_clusters(data, n_random=1, n_principal=0).kinds == ("random",)
    at_limit = theory.data_clusters(data[:, :3], n_random=0, n_principal=1)  # d = MAX_PCA_DIMENSION is allowed
    assert at_limit.kinds == ("principal",)


# ---------------------------------------------------------------------------------------------------- second run
# The second mutation run (all 461 mutants, after the tests above) left 12 alive; TESTING.md says why each stays
# (11 equivalent, 1 needs a second device). The test below pins what one of them (`data_clusters__mutmut_105`,
# the cast of `extra_directions` dropped) would break if the random directions were not always concatenated.


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_extra_directions_of_any_real_dtype_alone_give_the_float64_result(dtype: torch.dtype) -> None:
    """With only the caller's directions (no random or principal ones, whose float64 tensor would promote them
    in the concatenation) a float32 or integer ``extra_directions`` is cast to float64 itself."""
    generator = torch.Generator().manual_seed(11)
    inputs = torch.randint(-4, 5, (64, 3), generator=generator).double()
    directions = torch.tensor([[1, 0, 0], [1, 2, -1]], dtype=torch.float64)
    expected = theory.data_clusters(inputs, n_random=0, n_principal=0, extra_directions=directions)
    got = theory.data_clusters(inputs, n_random=0, n_principal=0, extra_directions=directions.to(dtype))
    assert got.to_dict() == expected.to_dict()
    assert torch.equal(got.lower, expected.lower) and got.lower.dtype == torch.float64
