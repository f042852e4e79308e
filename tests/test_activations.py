"""lightning_stability.activations: the AbsoluteValue activation x ↦ |x| of the paper's Theorem 2.3."""

from __future__ import annotations

import torch
from torch import nn

from lightning_stability import activations
from lightning_stability.activations import AbsoluteValue


def test_absolute_value_of_hand_values() -> None:
    inputs = torch.tensor([[-2.0, -0.5, 0.0], [0.25, 3.0, -(2.0**-100)]])
    out = AbsoluteValue()(inputs)
    assert out.shape == (2, 3) and out.dtype == torch.float32
    assert out.tolist() == [[2.0, 0.5, 0.0], [0.25, 3.0, 2.0**-100]]
    assert AbsoluteValue()(torch.tensor([-7], dtype=torch.int64)).tolist() == [7]
    assert AbsoluteValue()(torch.tensor([-1.5], dtype=torch.float64)).dtype == torch.float64


def test_gradient_is_the_sign() -> None:
    inputs = torch.tensor([-2.0, 0.5, 0.0, -0.25], requires_grad=True)
    AbsoluteValue()(inputs).sum().backward()
    assert inputs.grad is not None and inputs.grad.tolist() == [-1.0, 1.0, 0.0, -1.0]


def test_a_parameter_free_module_in_a_network() -> None:
    assert list(AbsoluteValue().parameters()) == [] and list(AbsoluteValue().state_dict()) == []
    net = nn.Sequential(nn.Linear(2, 2, bias=False), AbsoluteValue())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0], [-2.0, 0.0]]))
    # (1, 3) -> (1 − 3, −2) = (−2, −2) -> (2, 2)
    assert net(torch.tensor([[1.0, 3.0]])).tolist() == [[2.0, 2.0]]
    assert activations.__all__ == ["AbsoluteValue"]
