"""The gradient-flow kernels: per-layer norms of per-parameter gradient norms, the first/last ratio, depth layers."""

from __future__ import annotations

import math

import pytest
import torch
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


def test_depth_layers_read_each_module_s_own_registered_weight() -> None:
    """Only a parameter registered as ``weight`` on the module itself counts (what ``module._parameters`` holds):
    tied weights count in both modules, an alias registered before ``weight`` does not hide it, a ``weight``
    that is a property or a parametrization's output does not count."""
    from torch.nn.utils import parametrize

    class Alias(nn.Module):  # the same Parameter under two names, `weight` second
        def __init__(self) -> None:
            super().__init__()
            self.kernel = nn.Parameter(torch.ones(2, 2))
            self.register_parameter("weight", self.kernel)

    class Computed(nn.Module):  # `weight` a property over a registered parameter of another name
        def __init__(self) -> None:
            super().__init__()
            self.raw = nn.Parameter(torch.ones(2, 2))

        @property
        def weight(self) -> torch.Tensor:
            return 2 * self.raw

    class Unset(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_parameter("weight", None)

    embedding, decoder = nn.Embedding(5, 3), nn.Linear(3, 5, bias=False)
    decoder.weight = embedding.weight  # tied
    scaled = nn.Linear(2, 2)
    parametrize.register_parametrization(scaled, "weight", nn.Identity())
    model = nn.Sequential(embedding, decoder, Alias(), Computed(), Unset(), scaled)
    assert depth_layers(model) == ["0", "1", "2"]
    expected = [
        name
        for name, module in model.named_modules()
        if isinstance(module._parameters.get("weight"), nn.Parameter) and module._parameters["weight"].dim() >= 2
    ]
    assert depth_layers(model) == expected
