"""Shared by the figure tests: the sizes of the hand-made margins and how to read a panel's legend."""

from __future__ import annotations

import torch

NUM_CLASSES = 3
N = 400


def legend_texts(axes) -> list[str]:
    legend = axes.get_legend()
    assert legend is not None, f"panel {axes.get_title()!r} has no legend"
    return [text.get_text() for text in legend.get_texts()]


def margins_with_accuracy(accuracy: float, seed: int, low: float = -1.0, high: float = 5.0) -> torch.Tensor:
    """``N`` margins in ``[low, high]``, exactly ``accuracy·N`` of them positive."""
    generator = torch.Generator().manual_seed(seed)
    good = round(accuracy * N)
    positive = 0.05 + (high - 0.05) * torch.rand(good, generator=generator, dtype=torch.float64)
    negative = low * torch.rand(N - good, generator=generator, dtype=torch.float64)
    return torch.cat([positive, negative])[torch.randperm(N, generator=generator)]
