"""Figures of the per-sample dynamics (docs/samples.md): the data map and the blame grids.

* `data_map_figure` — confidence against variability, one dot per sample, coloured by correctness (the dataset
  cartography picture of Swayamdipta et al., 2020);
* `blame_figure` — one row per blame set of a check (forgotten, worst margins, Condition B witness, data cluster),
  each cell a sample drawn as an image (``[C, H, W]``, ``[H, W]`` or a square flattened vector) or, for a
  short vector, its values, titled with its index, label and prediction;
* `as_picture` — what a sample's input looks like in a cell, or ``None`` if it cannot be shown;
* `run_dynamics`, `make_sample_report` — offline (``lightning-stability report`` / ``samples``): a run's
  per-sample dynamics from its ``samples.csv`` or a replay of its margin files, and the two pictures.

matplotlib is imported inside the functions (optional, in the ``examples`` extra); nothing needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .dynamics.samples import SampleDynamics, SampleStatistics
from .files import load_margin_files, load_samples_csv

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MAX_VALUES_SHOWN",
    "BlameCell",
    "as_picture",
    "blame_figure",
    "data_map_figure",
    "default_to_image",
    "make_sample_report",
    "run_dynamics",
]

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


def run_dynamics(log_dir: str | Path) -> SampleDynamics:
    """A run's per-sample dynamics: its ``samples.csv`` (searched under ``log_dir``), else a replay of its margin
    files through `lightning_stability.dynamics.SampleStatistics`.

    Raises:
        FileNotFoundError: if ``log_dir`` holds neither, saying which monitor options write them.
        ValueError: if the margin files predate the predicted classes (written by an older version).
    """
    try:
        return load_samples_csv(log_dir)
    except FileNotFoundError:
        pass
    try:
        checks = load_margin_files(log_dir)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"neither samples.csv nor margin files under {log_dir}; train with StabilityMonitor(save_margins=True) "
            "(or save_samples=True) and pass the run's log directory."
        ) from None
    if any("predicted" not in check for check in checks):
        raise ValueError(f"the margin files under {log_dir} have no predicted classes; no samples.csv either.")
    statistics = SampleStatistics()
    for check in checks:
        statistics.update(check["indices"], check["targets"], check["margins"], check["losses"], check["predicted"])
    return statistics.result()


def _blame_check(checks: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The last instability event's check that holds blame cells, else the last check that does."""
    from .plots import instability_events

    events, _ = instability_events(checks)
    with_cells = [i for i, check in enumerate(checks) if check.get("blame_cells")]
    chosen = [i for i in with_cells if i in events] or with_cells
    return checks[chosen[-1]] if chosen else None


def make_sample_report(log_dir: str | Path, output: str | Path) -> list[Path]:
    """Draw the data map of a run into ``<output stem>_data_map.png`` and, if its margin files hold blame cells, the
    blame grid of its last instability event (else of its last check) into ``<output stem>_blame.png``; returns
    the paths written."""
    from .records import BLAME_SETS

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    dynamics = run_dynamics(log_dir)
    data_map = output.with_name(f"{output.stem}_data_map.png")
    data_map_figure(dynamics, title=f"data map of {Path(log_dir).name}").savefig(data_map, dpi=90)
    written = [data_map]
    try:
        checks = load_margin_files(log_dir)
    except FileNotFoundError:
        return written
    check = _blame_check(checks)
    if check is None:
        return written
    rows = []
    for key, title in BLAME_SETS.items():
        cells = check["blame_cells"].get(key)
        if cells:
            row = [
                BlameCell(index=int(i), target=int(t), predicted=int(p), picture=picture)
                for i, t, p, picture in zip(
                    cells["index"], cells["target"], cells["predicted"], cells["pictures"], strict=True
                )
            ]
            rows.append((f"{title} ({check['blame'][key].numel()})", row))
    when = "before training" if check["epoch"] < 0 else f"epoch {check['epoch']}"
    blame = output.with_name(f"{output.stem}_blame.png")
    blame_figure(rows, f"{when}: samples to blame (label → prediction)").savefig(blame, dpi=90)
    return [*written, blame]
