"""lightning_stability.figures.data_map: the data map of the per-sample dynamics (docs/samples.md)."""

from __future__ import annotations

import torch

from lightning_stability.dynamics import SampleStatistics
from lightning_stability.figures.data_map import data_map_figure


def test_data_map_plots_every_sample_and_circles_the_highlighted() -> None:
    stats = SampleStatistics()
    for margins in ([1.0, -1.0, 0.5], [2.0, -0.5, -0.2]):
        stats.update(
            torch.arange(3),
            torch.zeros(3, dtype=torch.long),
            torch.tensor(margins),
            torch.tensor([0.1, 2.0, 0.7]) * (1 + margins[0]),
            torch.zeros(3),
        )
    dynamics = stats.result()
    figure = data_map_figure(dynamics, highlight=torch.tensor([1, 2]), highlight_label="flipped")
    axes = figure.axes[0]
    dots, circles = axes.collections
    assert dots.get_offsets().tolist() == torch.stack([dynamics.variability, dynamics.confidence], 1).tolist()
    assert circles.get_offsets().tolist() == torch.stack([dynamics.variability, dynamics.confidence], 1)[1:].tolist()
    assert axes.get_legend().get_texts()[0].get_text() == "flipped (2)"
