"""The gradient-flow kernels: per-layer norms of per-parameter gradient norms, the first/last ratio, depth layers."""

from __future__ import annotations

import math

import pytest
from torch import nn

from lightning_stability.dynamics import depth_layers, first_last_ratio, layer_norms


def test_norm_types_and_the_pure_functions() -> None:
    norms = {"a.weight": 3.0, "a.bias": 4.0, "b.weight": 1.0, "c.weight": 9.0}
    assert layer_norms(norms, ["a", "b"]) == {"a": 5.0, "b": 1.0}
    assert layer_norms(norms, ["a", "b"], norm_type=1) == {"a": 7.0, "b": 1.0}
    assert layer_norms(norms, ["a", "b"], norm_type=float("inf")) == {"a": 4.0, "b": 1.0}
    assert layer_norms(norms, ["a", "x"]) == {"a": 5.0}  # a layer without gradients is left out
    assert first_last_ratio([2.0, 5.0, 4.0]) == 0.5
    assert first_last_ratio([2.0, 0.0]) == math.inf and math.isnan(first_last_ratio([0.0, 0.0]))
    with pytest.raises(ValueError, match="at least two layers"):
        first_last_ratio([1.0])
    with pytest.raises(ValueError, match="`norm_type` must be a positive number"):
        layer_norms(norms, ["a"], norm_type=0)


def test_depth_layers_are_the_modules_with_a_trainable_weight_matrix() -> None:
    model = nn.Sequential(
        nn.LayerNorm(4),  # 1-D weight: not a depth layer
        nn.Linear(4, 5),
        nn.ReLU(),
        nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2)),
        nn.Embedding(7, 3),
        nn.Linear(5, 2),
    )
    assert depth_layers(model) == ["1", "3.0", "4", "5"]  # registration order
    model[1].weight.requires_grad_(False)  # frozen: not trained, not a layer of the gradient flow
    assert depth_layers(model) == ["3.0", "4", "5"]
