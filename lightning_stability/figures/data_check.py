"""The witness picture of the data-cluster check (docs/theory.md §9; ``lightning-stability check-data``): the
training inputs projected on the worst direction, the witness slab and its dilation, and the witness samples.

matplotlib is imported inside `witness_figure` (an optional dependency, in the ``examples`` extra); the figure
is drawn without a display (``Agg``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import theory

__all__ = ["witness_figure"]


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
