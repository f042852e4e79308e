"""Every matplotlib figure of the package: the envelope figure, the run report and the data-check witnesses.

matplotlib is imported inside the functions (it is an optional dependency, in the ``examples`` extra); figures
are drawn without a display (``Agg``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from . import theory
from .files import load_margin_files

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DYNAMICS_PANELS",
    "EVENT_LABEL",
    "envelope_figure",
    "instability_events",
    "make_report",
    "read_dynamics_scalars",
    "report_figure",
    "witness_figure",
]

def envelope_figure(
    report: theory.StabilityReport, margins: Tensor, weights: Tensor, epoch: int | None = None
) -> Figure:
    """A matplotlib figure of the empirical ``F(−η+λ)`` against the Theorem A and B envelopes (docs/theory.md §5, §6)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    order = torch.argsort(margins)
    sorted_margins, cumulative = margins[order], torch.cumsum(weights[order], 0)
    axes.step(sorted_margins.numpy(), cumulative.numpy(), where="post", label="empirical F", color="black")
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
            (lam - floor.eta).numpy(), envelope(lam).numpy(), color=colour, label=f"U_{name} (floor {floor.floor:.3f})"
        )
    axes.set_xlim(report.margin_min - 0.5, max(report.theorem_a.eta0, report.theorem_b.eta0) + 0.5)
    axes.set_ylim(0, max(a.zeta, b.zeta) * 1.2)
    axes.set_xlabel("margin δ")
    axes.set_ylabel("mass F(δ)")
    axes.legend(loc="upper left")
    when = "" if epoch is None else ("before training: " if epoch < 0 else f"epoch {epoch}: ")
    axes.set_title(f"{when}margin distribution F against the envelopes U_A, U_B", fontsize=10)
    figure.text(
        0.5,
        0.005,
        "A floor holds when F stays below its envelope U; the lower F near and below 0, the higher the floor.",
        ha="center",
        fontsize=7,
    )
    figure.tight_layout()
    return figure


def make_report(log_dir: str | Path, output: str | Path) -> Path:
    """Plot accuracy vs. loss floor vs. Theorem A/B floors, the condition constants and the margin
    distributions of every check found under ``log_dir`` into ``output`` (PNG)."""
    import matplotlib
    from matplotlib.figure import Figure

    checks = load_margin_files(log_dir)
    epochs = [check["epoch"] for check in checks]
    reports = [check["report"] for check in checks]

    def series(key: str) -> list[float]:
        return [report.get(key, float("nan")) for report in reports]

    figure = Figure(figsize=(16, 4.5))
    floors, constants, distribution = figure.subplots(1, 3)
    floors.plot(epochs, series("accuracy"), "o-", color="black", label="training accuracy")
    floors.plot(epochs, series("loss_floor"), "s-", label="loss floor (Theorem 0)")
    floors.plot(epochs, series("theorem_a/floor"), "^-", label="Theorem A floor")
    floors.plot(epochs, series("theorem_b/floor"), "v-", label="Theorem B floor")
    floors.set(xlabel="epoch (−1: before training)", ylabel="accuracy / certified floor", ylim=(-0.02, 1.02))
    floors.set_title("accuracy and certified floors")
    floors.legend(loc="lower right", fontsize=8)

    constants.semilogy(epochs, series("theorem_a/condition_a_constant"), "^-", label="C_A (Theorem A's best)")
    constants.semilogy(epochs, series("theorem_b/kappa_lower"), "v-", label="κ_lo (Theorem B's best)")
    constants.semilogy(epochs, series("theorem_b/kappa_upper"), "v--", label="κ_hi")
    constants.axhline(1.0, color="grey", lw=0.8)
    constants.set(xlabel="epoch", title="condition constants")
    constants.legend(fontsize=8)

    colours = matplotlib.colormaps["viridis"](torch.linspace(0, 1, len(checks)).numpy())
    for colour, check in zip(colours, checks, strict=True):
        margins = check["margins"].numpy()
        distribution.hist(
            margins, bins=80, histtype="step", density=True, color=colour, label=f"epoch {check['epoch']}"
        )
    distribution.axvline(0.0, color="red", lw=0.8)
    distribution.set(xlabel="margin δ", ylabel="density", title="margin distribution per check")
    if len(checks) <= 12:
        distribution.legend(fontsize=7)
    figure.suptitle(f"lightning-stability report: {Path(log_dir)}")
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    return output


def witness_figure(report: theory.DataClusterReport, inputs: torch.Tensor, output: str | Path) -> Path:
    """PNG of the witness samples (as images if the inputs are square images) and the worst projection."""
    from matplotlib.figure import Figure

    flat = inputs.reshape(inputs.shape[0], -1).to(torch.float64)
    projections = flat @ report.worst_direction
    indices = report.witness_indices[:32]
    side = math.isqrt(flat.shape[1])
    columns = 8
    rows = 1 + (math.ceil(len(indices) / columns) if side * side == flat.shape[1] and len(indices) else 0)
    figure = Figure(figsize=(2 * columns, 2.4 * rows))
    axes = figure.add_subplot(rows, 1, 1)
    axes.hist(projections.numpy(), bins=120, color="grey")
    if report.witness is not None:
        centre, radius = report.witness
        axes.axvspan(centre - radius, centre + radius, color="red", alpha=0.4, label="witness slab")
        axes.axvspan(
            centre - report.dilation * radius,
            centre + report.dilation * radius,
            color="red",
            alpha=0.15,
            label=f"dilated ×{report.dilation:g}",
        )
        axes.legend()
    axes.set_title(
        f"projections on the worst ({report.worst_direction_kind}) direction; κ_hi = {report.constant_upper:.4f}"
    )
    if rows > 1:
        for position, index in enumerate(indices.tolist()):
            image_axes = figure.add_subplot(rows, columns, columns + position + 1)
            image_axes.imshow(flat[index].reshape(side, side).numpy(), cmap="gray")
            image_axes.set_title(f"#{index}", fontsize=8)
            image_axes.axis("off")
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=90)
    return output
