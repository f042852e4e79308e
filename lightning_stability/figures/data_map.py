"""The data map (docs/samples.md): confidence against variability, one dot per sample, coloured by correctness
(the dataset cartography picture of Swayamdipta et al., 2020).

matplotlib is imported inside `data_map_figure` (optional, in the ``examples`` extra); nothing needs a display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..dynamics.samples import SampleDynamics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["data_map_figure"]


def data_map_figure(
    dynamics: SampleDynamics,
    title: str = "data map",
    highlight: Tensor | None = None,
    highlight_label: str = "highlighted",
) -> Figure:
    """Confidence (mean probability of the label) against variability (its standard deviation over the checks),
    one dot per sample coloured by correctness; ``highlight`` (sample indices) circles chosen samples, named
    ``highlight_label`` in the legend."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.6, 4.4), dpi=90, layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    points = axes.scatter(
        dynamics.variability.numpy(),
        dynamics.confidence.numpy(),
        c=dynamics.correctness.numpy(),
        cmap="coolwarm_r",
        vmin=0.0,
        vmax=1.0,
        s=6,
        alpha=0.7,
        linewidths=0,
    )
    if highlight is not None and highlight.numel():
        chosen = torch.isin(dynamics.index, highlight)
        axes.scatter(
            dynamics.variability[chosen].numpy(),
            dynamics.confidence[chosen].numpy(),
            s=28,
            facecolors="none",
            edgecolors="black",
            linewidths=0.7,
            label=f"{highlight_label} ({int(chosen.sum())})",
        )
        axes.legend(loc="upper right", fontsize=8)
    figure.colorbar(points, ax=axes, label="correctness (fraction of checks correct)")
    axes.set_xlabel("variability (std of p(label) over checks)")
    axes.set_ylabel("confidence (mean p(label))")
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlim(left=0.0)
    axes.set_title(f"{title}: {len(dynamics)} samples", fontsize=10)
    for text, x, y in (("easy to learn", 0.02, 0.95), ("ambiguous", 0.5, 0.5), ("hard / mislabelled?", 0.02, 0.05)):
        axes.text(x, y, text, transform=axes.transAxes, fontsize=8, color="dimgray")
    return figure
