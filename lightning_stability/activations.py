"""Activation modules the package provides (pure torch, no Lightning)."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["AbsoluteValue"]


class AbsoluteValue(nn.Module):
    """The activation ``x ↦ |x|`` of the paper's Theorem 2.3 (docs/theory.md §9).

    Theorem 2.3 of the paper applies to networks built with it: for them, stability can be checked on the
    training inputs alone (the data-cluster check of §9). The `ParametrizationMonitor` recognises it as a
    hidden-layer activation.

    Example:
        >>> import torch
        >>> AbsoluteValue()(torch.tensor([-2.0, 0.5]))
        tensor([2.0000, 0.5000])
    """

    def forward(self, inputs: Tensor) -> Tensor:
        return inputs.abs()
