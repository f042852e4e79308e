"""lightning_stability.figures.envelope: the envelope figure says which side is good and fits TensorBoard's image
cards."""

from __future__ import annotations

import pytest
import torch

from lightning_stability import theory
from lightning_stability.figures.envelope import envelope_figure

from ..helpers import SMALL_GRID
from .helpers import NUM_CLASSES, N, legend_texts, margins_with_accuracy

pytest.importorskip("matplotlib")


def test_envelope_figure_says_which_side_is_good() -> None:
    margins = margins_with_accuracy(0.9, seed=7)
    weights = torch.full((N,), 1 / N, dtype=torch.float64)
    report = theory.certify(margins, NUM_CLASSES, loss=0.4, **SMALL_GRID)
    figure = envelope_figure(report, margins, weights, epoch=3)
    (axes,) = figure.axes
    assert axes.get_title().startswith("epoch 3: ")
    legend = axes.get_legend()
    assert legend.get_title().get_text() == "floor holds while F ≤ U up to η0"
    a, b = report.theorem_a, report.theorem_b
    assert legend_texts(axes) == [
        "F (empirical)",
        f"U_A → A floor {a.floor:.3f}",
        f"end of A's window, η0 = {a.eta0:.3g}",
        f"U_B → B floor {b.floor:.3f}",
        f"end of B's window, η0 = {b.eta0:.3g}",
    ]
    # each window's end is a vertical line at its η0: beyond it F may cross U without breaking the floor
    ends = {line.get_label(): line.get_xdata() for line in axes.get_lines() if line.get_label().startswith("end of")}
    assert [float(x[0]) for x in ends.values()] == [a.eta0, b.eta0]
    assert all(float(x[0]) == float(x[1]) for x in ends.values())
    # TensorBoard's image cards are 350 px wide: the figure is drawn at that width, no text under 9 points
    width, height = figure.get_size_inches() * figure.dpi
    assert 340 <= round(width) <= 360 and height < width
    sizes = [text.get_fontsize() for text in [*legend.get_texts(), legend.get_title(), axes.title, axes.xaxis.label]]
    sizes += [label.get_fontsize() for label in axes.get_xticklabels()]
    assert min(sizes) >= 9
