"""The envelope figure the `StabilityMonitor` logs at each check (docs/theory.md §5, §6): the empirical margin
distribution ``F`` against the Theorem A and B envelopes, drawn for TensorBoard's image cards.

matplotlib is imported inside `envelope_figure` (an optional dependency, in the ``examples`` extra); the figure
is drawn without a display (``Agg``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .. import theory

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ENVELOPE_FIGURE_SIZE", "envelope_figure"]


ENVELOPE_FIGURE_SIZE = (4.4, 3.3)
"""Inches of `envelope_figure`; at its 80 dpi that is 352 × 264 pixels, the width of TensorBoard's image cards
(350 px), so TensorBoard shows it unscaled."""


def envelope_figure(
    report: theory.StabilityReport, margins: Tensor, weights: Tensor, epoch: int | None = None
) -> Figure:
    """A matplotlib figure of the empirical ``F(−η+λ)`` against the Theorem A and B envelopes (docs/theory.md §5, §6).

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
    a, b = report.theorem_a, report.theorem_b
    for floor, envelope, colour, name in (
        (a, theory.condition_a_envelope(a.condition_a_constant, a.gamma, a.lam0, a.zeta), "tab:blue", "A"),
        (
            b,
            theory.condition_b_envelope(
                b.kappa_lower, b.dilation, b.zeta, b.min_cluster_mass, b.min_width, b.eta + b.eta0
            ),
            "tab:orange",
            "B",
        ),
    ):
        lam = torch.linspace(0, floor.eta + floor.eta0, 512, dtype=torch.float64)[1:]
        axes.plot(
            (lam - floor.eta).numpy(),
            envelope(lam).numpy(),
            color=colour,
            lw=1.8,
            label=f"U_{name} → {name} floor {floor.floor:.3f}",
        )
        # U is defined up to the window's end η0 only: beyond it F may exceed U without breaking the floor
        axes.axvline(floor.eta0, color=colour, lw=1.0, ls="--", label=f"end of {name}'s window, η0 = {floor.eta0:.3g}")
    axes.axvline(0.0, color="red", lw=0.8, ls=":")
    axes.set_xlim(report.margin_min - 0.5, max(report.theorem_a.eta0, report.theorem_b.eta0) + 0.5)
    axes.set_ylim(0, max(a.zeta, b.zeta) * 1.2)
    axes.set_xlabel("margin δ", fontsize=10)
    axes.set_ylabel("mass F(δ)", fontsize=10)
    axes.tick_params(labelsize=9)
    legend = axes.legend(loc="upper left", fontsize=9, title="floor holds while F ≤ U up to η0", title_fontsize=9)
    legend.get_title().set_fontweight("bold")
    when = "" if epoch is None else ("before training: " if epoch < 0 else f"epoch {epoch}: ")
    axes.set_title(f"{when}F against the envelopes U_A, U_B", fontsize=10)
    return figure
