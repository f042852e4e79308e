"""lightning_stability.dynamics.results: the EigenEstimate and ParametrizationStats records and their derived values."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lightning_stability.dynamics.results import EigenEstimate, ParametrizationStats


def test_eigen_estimate_defaults_and_frozen() -> None:
    estimate = EigenEstimate(value=2.5, vector=torch.ones(3), products=7, converged=True, residual=1e-4)
    assert estimate.shift == 0.0  # no shift iterated on
    assert math.isnan(estimate.image_norm)  # only power iteration sets ‖H v‖
    with pytest.raises(dataclasses.FrozenInstanceError):
        estimate.value = 3.0  # type: ignore[misc]


def stats() -> ParametrizationStats:
    # 4 units: unit 0 dead with a zero outgoing norm, unit 1 zero incoming, unit 3 dead; units 1 and 2 live
    return ParametrizationStats(
        units=4,
        dead=torch.tensor([True, False, False, True]),
        incoming_norms=torch.tensor([1.0, 0.0, 2.0, 3.0]),
        outgoing_norms=torch.tensor([0.0, 1.0, 4.0, 0.5]),
        balance=torch.tensor([math.nan, math.nan, 2.0, 6.0]),
        live=torch.tensor([False, True, True, False]),
        balance_min=2.0,
        balance_max=6.0,
        balance_spread=3.0,
        max_cosine=0.875,
        max_cosine_pair=(2, 3),
        min_cosine=-0.5,
        min_cosine_pair=(0, 2),
        parallel_pairs=1,
        opposite_pairs=0,
        zero_incoming=1,
        zero_outgoing=1,
    )


def test_derived_counts() -> None:
    assert stats().dead_count == 2
    assert stats().zero_units == 2  # unit 0 (outgoing 0) and unit 1 (incoming 0)
    both = dataclasses.replace(stats(), incoming_norms=torch.tensor([0.0, 0.0, 2.0, 3.0]))
    assert both.zero_units == 2  # unit 0 with both norms zero counts once


def test_to_metrics_names_and_values() -> None:
    assert stats().to_metrics("parametrization/layer_1") == {
        "parametrization/layer_1/units": 4.0,
        "parametrization/layer_1/dead_units": 2.0,
        "parametrization/layer_1/dead_fraction": 0.5,
        "parametrization/layer_1/live_units": 2.0,
        "parametrization/layer_1/balance_min": 2.0,
        "parametrization/layer_1/balance_max": 6.0,
        "parametrization/layer_1/balance_spread": 3.0,
        "parametrization/layer_1/max_cosine": 0.875,
        "parametrization/layer_1/min_cosine": -0.5,
        "parametrization/layer_1/parallel_pairs": 1.0,
        "parametrization/layer_1/opposite_pairs": 0.0,
        "parametrization/layer_1/zero_units": 2.0,
        "parametrization/layer_1/zero_incoming": 1.0,
        "parametrization/layer_1/zero_outgoing": 1.0,
    }
    assert all(type(value) is float for value in stats().to_metrics("p").values())


def test_to_metrics_keeps_nan_where_undefined() -> None:
    undefined = dataclasses.replace(
        stats(), balance_min=math.nan, max_cosine=math.nan, max_cosine_pair=None, min_cosine_pair=None
    )
    metrics = undefined.to_metrics("p")
    assert math.isnan(metrics["p/balance_min"]) and math.isnan(metrics["p/max_cosine"])
