"""The data check of THEORY.md §9 against brute force, planted clusters and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from lightning_stability import theory
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
