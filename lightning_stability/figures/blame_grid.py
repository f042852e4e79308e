"""The blame grid (docs/samples.md): one row per blame set of a check (forgotten, worst margins, Condition B
witness, data cluster), each cell a sample drawn as an image (``[C, H, W]``, ``[H, W]`` or a square flattened
vector) or, for a short vector, its values, titled with its index, label and prediction.

* `blame_figure` — the grid of `BlameCell` rows;
* `as_picture` — what a sample's input looks like in a cell, or ``None`` if it cannot be shown;
* `default_to_image` — the input of a dataset item.

matplotlib is imported inside `blame_figure` (optional, in the ``examples`` extra); nothing needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MAX_VALUES_SHOWN", "BlameCell", "as_picture", "blame_figure", "default_to_image"]


MAX_VALUES_SHOWN = 6
"""A non-image input with at most this many values is shown as its values, printed in the cell."""


@dataclass(frozen=True)
class BlameCell:
    """One sample of a blame grid: its index, label, prediction and picture (see `as_picture`)."""

    index: int
    target: int
    predicted: int
    picture: Tensor


def default_to_image(item: Any) -> Any:
    """The input of a dataset item: ``item[0]`` of an ``(x, y)`` pair, the first tensor of a dict with more than one
    value, the item itself if it is a tensor; ``None`` otherwise."""
    if isinstance(item, Tensor):
        return item
    if isinstance(item, tuple | list) and item:
        return item[0]
    if isinstance(item, dict):
        tensors = [value for value in item.values() if isinstance(value, Tensor) and value.numel() > 1]
        return tensors[0] if tensors else None
    return None


def as_picture(value: Any) -> Tensor | None:
    """The float tensor a cell shows: ``[H, W]`` (grey) or ``[H, W, 3]`` for an image — ``[C, H, W]`` with
    ``C ∈ {1, 3}``, ``[H, W]``, ``[H, W, 3]`` or a flattened square of side ``≥ 4`` — a 1-d tensor of at most
    `MAX_VALUES_SHOWN` values for a short vector; ``None`` for anything else."""
    if not isinstance(value, Tensor):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            return None
    data = value.detach().cpu().to(torch.float32)
    if data.dim() == 3 and data.shape[0] in (1, 3) and min(data.shape[1:]) >= 2:
        return data[0] if data.shape[0] == 1 else data.permute(1, 2, 0)
    if data.dim() == 3 and data.shape[2] == 3 and min(data.shape[:2]) >= 2:
        return data
    if data.dim() == 2 and min(data.shape) >= 2:
        return data
    if data.dim() > 1:
        return None
    flat = data.reshape(-1)
    side = math.isqrt(flat.numel())
    if side >= 4 and side * side == flat.numel():
        return flat.reshape(side, side)
    if 0 < flat.numel() <= MAX_VALUES_SHOWN:
        return flat
    return None


def _scaled(picture: Tensor) -> Tensor:
    low, high = float(picture.min()), float(picture.max())
    return (picture - low) / (high - low) if high > low else torch.zeros_like(picture)


def blame_figure(rows: Sequence[tuple[str, Sequence[BlameCell]]], title: str) -> Figure:
    """One row per ``(name, cells)`` blame set (at most as many columns as the longest row); each cell titled
    ``#index``, ``y=label → prediction`` (red when wrong)."""
    from matplotlib.figure import Figure

    rows = [(name, cells) for name, cells in rows if cells]
    columns = max((len(cells) for _, cells in rows), default=1)
    figure = Figure(figsize=(1.25 * columns + 1.2, 1.55 * max(len(rows), 1) + 0.5), dpi=80, layout="constrained")
    figure.suptitle(title, fontsize=10)
    if not rows:
        figure.text(0.5, 0.5, "no sample to blame", ha="center", va="center")
        return figure
    grid = figure.subfigures(len(rows), 1, squeeze=False)
    for (name, cells), subfigure in zip(rows, grid[:, 0], strict=True):
        subfigure.suptitle(name, fontsize=9, x=0.0, ha="left")
        axes_row = subfigure.subplots(1, columns, squeeze=False)[0]
        for axes in axes_row:
            axes.set_axis_off()
        for cell, axes in zip(cells, axes_row, strict=False):
            picture = cell.picture
            if picture.dim() == 1:
                axes.text(
                    0.5, 0.5, "\n".join(f"{v:.3g}" for v in picture.tolist()), ha="center", va="center", fontsize=8
                )
            else:
                axes.imshow(_scaled(picture).numpy(), cmap="gray" if picture.dim() == 2 else None)
            wrong = cell.target != cell.predicted
            axes.set_title(
                f"#{cell.index}\ny={cell.target} → {cell.predicted}", fontsize=8, color="red" if wrong else "black"
            )
    return figure
