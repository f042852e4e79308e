"""The parametrization kernels find planted degeneracies (dead, duplicated, negated, rescaled, disconnected units),
with their thresholds, per-activation dead-unit rules and hidden-layer discovery."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from lightning_stability.dynamics import dead_units, find_hidden_layers, parametrization_statistics
from lightning_stability.example import AbsMLP

from ..helpers import (
    DEAD,
    DISCONNECTED,
    DUPLICATE,
    MLP,
    NEGATED,
    NEGATED_OF,
    ORIGINAL,
    PLANTED_HIDDEN,
    RESCALED,
    first_layer_statistics,
    make_dataset,
    planted_mlp,
)


def test_planted_degeneracies_are_found() -> None:
    inputs = make_dataset(200).tensors[0]
    pl.seed_everything(0)
    # the same seed without planting: nothing found
    baseline = first_layer_statistics(MLP(hidden=PLANTED_HIDDEN), inputs)
    assert baseline.dead_count == 0 and baseline.parallel_pairs == baseline.opposite_pairs == 0
    assert baseline.zero_units == 0 and baseline.balance_spread < 20

    stats = first_layer_statistics(planted_mlp(), inputs)
    assert torch.nonzero(stats.dead).flatten().tolist() == [DEAD]
    assert stats.parallel_pairs == 1 and stats.max_cosine_pair == (ORIGINAL, DUPLICATE)
    assert stats.max_cosine == pytest.approx(1.0)
    assert stats.opposite_pairs == 1 and stats.min_cosine_pair == (NEGATED, NEGATED_OF)
    assert stats.min_cosine == pytest.approx(-1.0)
    assert stats.zero_units == 1 and stats.zero_outgoing == 1 and stats.zero_incoming == 0
    assert stats.outgoing_norms[DISCONNECTED] == 0 and math.isinf(stats.balance[DISCONNECTED])
    assert torch.nonzero(~stats.live).flatten().tolist() == [DEAD, DISCONNECTED]
    # the rescaled unit: balance × 10⁴ of its own, the largest, and the spread follows
    assert int(torch.argmax(torch.where(stats.live, stats.balance, 0))) == RESCALED
    assert stats.balance_max == pytest.approx(float(stats.balance[RESCALED]))
    assert stats.balance_spread == pytest.approx(stats.balance_max / stats.balance_min)
    assert stats.balance_spread > 1e4 / baseline.balance_spread
    metrics = stats.to_metrics("p")
    assert metrics["p/dead_fraction"] == 1 / PLANTED_HIDDEN and metrics["p/live_units"] == PLANTED_HIDDEN - 2


def test_threshold_and_zero_tolerance() -> None:
    weight = torch.tensor([[1.0, 0.0], [0.995, 0.0999], [-1.0, 0.0], [1e-9, 0.0]])
    out = torch.ones(1, 4)
    z = torch.ones(3, 4)
    stats = parametrization_statistics(weight, None, out, z, "relu", threshold=0.99)
    # cosines: (0,1) 0.995, (0,3) 1, (1,3) 0.995 parallel; (0,2) −1, (2,3) −1, (1,2) −0.995 opposite
    assert stats.parallel_pairs == 3 and stats.opposite_pairs == 3
    # at 0.999 only (0,2) remains, and the 1e-9 row counts as zero (out of the cosines)
    loose = parametrization_statistics(weight, None, out, z, "relu", threshold=0.999, zero_tol=1e-6)
    assert loose.zero_incoming == 1 and loose.parallel_pairs == 0 and loose.opposite_pairs == 1


def test_dead_unit_rules_per_activation() -> None:
    z = torch.tensor([[-1.0, 0.0, 7.0, 0.5, 0.0], [-2.0, 0.0, 8.0, -0.5, 0.0]])
    assert dead_units(z, "relu").tolist() == [True, True, False, False, True]
    assert dead_units(z, "leaky_relu").tolist() == [True, True, False, False, True]
    assert dead_units(z, "relu6").tolist() == [True, True, True, False, True]  # saturated at 6 as well
    assert dead_units(z, "abs").tolist() == [False, True, False, False, True]  # |x|: only z ≡ 0
    with pytest.raises(ValueError, match="`kind` must be one of"):
        dead_units(z, "tanh")
    with pytest.raises(ValueError, match=r"shape \[N, m\]"):
        dead_units(torch.zeros(0, 3), "relu")


def test_hidden_layers_are_found_in_module_order() -> None:
    model = nn.Sequential(
        nn.Linear(4, 5),
        nn.LeakyReLU(),
        nn.Dropout(0.1),
        nn.Sequential(nn.Linear(5, 6), nn.ReLU6()),
        nn.Linear(6, 7),
        nn.Tanh(),  # not a supported activation: no layer
        nn.Linear(7, 3),
        nn.PReLU(),
        nn.Linear(4, 2),  # does not read the 3 units: no layer
    )
    found = [(h.incoming_name, h.activation_name, h.outgoing_name, h.kind) for h in find_hidden_layers(model)]
    assert found == [("0", "1", "3.0", "leaky_relu"), ("3.0", "3.1", "4", "relu6")]
    absolute = [(h.incoming_name, h.outgoing_name, h.kind) for h in find_hidden_layers(AbsMLP(784, (5, 6), 10))]
    assert absolute == [("net.0", "net.2", "abs"), ("net.2", "net.4", "abs")]


def test_bad_statistics_inputs() -> None:
    w, v, z = torch.ones(4, 2), torch.ones(3, 4), torch.ones(5, 4)
    with pytest.raises(ValueError, match="same m"):
        parametrization_statistics(w, None, torch.ones(3, 5), z, "relu")
    with pytest.raises(ValueError, match=r"`bias_in` must have shape \[4\]"):
        parametrization_statistics(w, torch.ones(3), v, z, "relu")
    with pytest.raises(ValueError, match=r"`preactivations` must have shape \[N, 4\]"):
        parametrization_statistics(w, None, v, torch.ones(5, 3), "relu")
    with pytest.raises(ValueError, match="`threshold` must lie in"):
        parametrization_statistics(w, None, v, z, "relu", threshold=0.0)
