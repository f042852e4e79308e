"""The envelope figure the `StabilityMonitor` logs at each check (docs/theory.md §5, §6): the empirical margin
distribution ``F`` against the Theorem A and B envelopes, drawn for TensorBoard's image cards from the values
the assess step computed (`lightning_stability.assess.envelopes`).

matplotlib is imported inside `envelope_figure` (an optional dependency, in the ``examples`` extra); the figure
is drawn without a display (``Agg``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..assess.envelopes import EnvelopeCurve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ENVELOPE_FIGURE_SIZE", "envelope_figure"]


ENVELOPE_FIGURE_SIZE = (4.4, 3.3)
"""Inches of `envelope_figure`; at its 80 dpi that is 352 × 264 pixels, the width of TensorBoard's image cards
(350 px), so TensorBoard shows it unscaled."""

COLOURS = {"A": "tab:blue", "B": "tab:orange"}


def envelope_figure(
    curves: tuple[EnvelopeCurve, EnvelopeCurve], margins: Tensor, weights: Tensor, epoch: int | None = None
) -> Figure:
    """A matplotlib figure of the empirical ``F(δ)`` of ``margins`` under ``weights`` against the Theorem A and B
    envelopes ``curves`` (`lightning_stability.assess.envelopes.envelope_curves`; docs/theory.md §5, §6).

    A floor needs ``F`` **below** its envelope ``U`` on its window ``δ ≤ η0`` (dashed, in the floor's colour:
    beyond it ``F`` may cross ``U``); the legend's title says so. The figure is drawn for
    TensorBoard's image cards (`ENVELOPE_FIGURE_SIZE`, no text under 9 points).
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=ENVELOPE_FIGURE_SIZE, dpi=80, layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    order = torch.argsort(margins)
    sorted_margins, cumulative = margins[order], torch.cumsum(weights[order], 0)
    axes.step(sorted_margins.numpy(), cumulative.numpy(), where="post", color="black", lw=1.8, label="F (empirical)")
    for curve in curves:
        colour = COLOURS[curve.name]
        axes.plot(
            curve.delta.numpy(),
            curve.envelope.numpy(),
            color=colour,
            lw=1.8,
            label=f"U_{curve.name} → {curve.name} floor {curve.floor:.3f}",
        )
        # U is defined up to the window's end η0 only: beyond it F may exceed U without breaking the floor
        axes.axvline(
            curve.eta0, color=colour, lw=1.0, ls="--", label=f"end of {curve.name}'s window, η0 = {curve.eta0:.3g}"
        )
    axes.axvline(0.0, color="red", lw=0.8, ls=":")
    axes.set_xlim(float(margins.min()) - 0.5, max(curve.eta0 for curve in curves) + 0.5)
    axes.set_ylim(0, max(curve.zeta for curve in curves) * 1.2)
    axes.set_xlabel("margin δ", fontsize=10)
    axes.set_ylabel("mass F(δ)", fontsize=10)
    axes.tick_params(labelsize=9)
    legend = axes.legend(loc="upper left", fontsize=9, title="floor holds while F ≤ U up to η0", title_fontsize=9)
    legend.get_title().set_fontweight("bold")
    when = "" if epoch is None else ("before training: " if epoch < 0 else f"epoch {epoch}: ")
    axes.set_title(f"{when}F against the envelopes U_A, U_B", fontsize=10)
    return figure
