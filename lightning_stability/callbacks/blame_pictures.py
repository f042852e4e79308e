"""Publish, per-sample part: the pictures of the samples a check blames (docs/samples.md).

At an instability event the `StabilityMonitor` logs the blame sets (`lightning_stability.records.BlameSets`) as an
image grid with labels and predictions, or as a table (index, label, prediction, margin, why) when the inputs are
no pictures, the causes first — the smallest margins, the Condition B witness, the data cluster — then the samples
that flipped to wrong (`PICTURE_SETS`, `blame_title`): one image composed without matplotlib
(`lightning_stability.figures.blame_grid`), handed rendered to every logger (`lightning_stability.loggers.log_figure`).
A set larger than ``blame_size`` is cut to its ``blame_size`` smallest margins (the most wrong first,
`lightning_stability.dynamics.samples.smallest_margins_first`), and its title says so ("16 of 1,227 shown: the 16
smallest margins"). The per-check margin file holds the blamed samples' results (`blamed_samples`: index, label,
prediction, margin, which set), never their inputs. Only global rank zero reads the blamed samples' inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from ..distributions import rank_zero_warn
from ..dynamics.samples import smallest_margins_first
from ..figures.blame_grid import BlameCell, as_picture, blame_figure, default_to_image, row_title, short_values
from ..loggers import log_figure
from ..records import BLAME_SETS, CAUSES_FIRST, SMALLEST_MARGINS, BlameSets, MarginPass

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["PICTURE_SETS", "WHY", "BlamePictures", "blame_title", "blamed_samples"]

PICTURE_SETS = dict(
    zip(
        CAUSES_FIRST,
        (
            "cause: smallest margins",
            "cause: Condition B witness interval",
            "cause: isolated input cluster (data check)",
            "flipped to wrong since the previous check",
        ),
        strict=True,
    )
)
"""The blame sets (`BLAME_SETS`' keys) in the order the grid shows them, with their titles there: the samples that
cause an instability first, then those it cost (the margin file keeps `BLAME_SETS`' keys and titles)."""

WHY = {"worst": "worst margin", "witness": "B witness", "data_cluster": "data cluster", "forgotten": "flipped"}
"""The short reason of each blame set, in the table's ``why blamed`` column."""

_CAUSES = {"worst": "smallest margins", "witness": "B witness", "data_cluster": "data cluster"}


def blame_title(epoch: int, shown: list[str], pictures: bool) -> str:
    """The grid's title, naming the sets ``shown`` (keys of `PICTURE_SETS` with a cell): "instability at epoch 8:
    causes (smallest margins, B witness), then the samples that flipped (label -> prediction)" (the last part for
    ``pictures``, whose captions it explains)."""
    causes = [name for key, name in _CAUSES.items() if key in shown]
    parts = [f"causes ({', '.join(causes)})"] if causes else []
    if "forgotten" in shown:
        parts.append("then the samples that flipped" if causes else "the samples that flipped")
    return f"instability at epoch {epoch}: {', '.join(parts) or 'no sample to blame'}" + (
        " (label -> prediction)" if pictures and parts else ""
    )


def blamed_samples(blame: BlameSets, margin_pass: MarginPass, size: int) -> dict[str, dict[str, Any]]:
    """Per blame set (`BLAME_SETS`' keys, all four), its ``size`` samples of smallest margin as the margin file's
    ``blame_cells`` entry: the set sorted by ``(δ, index)`` and cut to ``size`` (`smallest_margins_first`: the most
    wrong first; an index ``margin_pass`` lacks last). Per sample ``index``, ``target``, ``predicted`` (int64) and
    ``margin`` (float64), looked up in ``margin_pass`` (``-1`` and NaN for an index it lacks), with ``why`` (the
    set's title), ``total`` (the set's size) and ``picked`` (`SMALLEST_MARGINS`: how the cut chose; files of earlier
    versions lack it, their cells are a set's first ``size`` indices). Fresh tensors of ``size`` entries at most:
    nothing of the dataset."""
    indices = margin_pass.indices.detach().cpu()
    entries = {}
    for key, title in BLAME_SETS.items():
        members = getattr(blame, key)
        chosen = smallest_margins_first(members, indices, margin_pass.margins, size)
        positions = torch.searchsorted(indices, chosen).clamp(max=max(indices.numel() - 1, 0))
        found = indices[positions] == chosen if indices.numel() else torch.zeros(chosen.shape, dtype=torch.bool)
        entries[key] = {
            "index": chosen,
            "target": _look_up(margin_pass.targets, positions, found, -1, torch.long),
            "predicted": _look_up(margin_pass.predicted, positions, found, -1, torch.long),
            "margin": _look_up(margin_pass.margins, positions, found, math.nan, torch.float64),
            "why": title,
            "total": int(members.numel()),
            "picked": SMALLEST_MARGINS,
        }
    return entries


def _look_up(
    values: torch.Tensor, positions: torch.Tensor, found: torch.Tensor, fill: float, dtype: torch.dtype
) -> torch.Tensor:
    """``values[positions]`` where ``found``, else ``fill``: a fresh ``dtype`` tensor."""
    missing = torch.full(positions.shape, fill, dtype=dtype)
    if not bool(found.any()):
        return missing
    return torch.where(found, values.detach().cpu()[positions].to(dtype), missing)


class BlamePictures:
    """The blame grid and the blamed samples' cells of one `StabilityMonitor`.

    Args:
        blame_size: the cells per row of a grid.
        to_image: ``to_image(dataset[i]) -> tensor`` picks the picture of a sample; default `default_to_image`.
    """

    def __init__(self, blame_size: int, to_image: Callable[[Any], Any] | None) -> None:
        self.blame_size = blame_size
        self.to_image = to_image or default_to_image
        self._said: set[str] = set()

    def _say_once(self, trainer: pl.Trainer, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            rank_zero_warn(trainer, f"StabilityMonitor: {message}")

    def cells(
        self, trainer: pl.Trainer, dataset: Dataset | None, blame: BlameSets, margin_pass: MarginPass
    ) -> list[tuple[str, list[BlameCell]]]:
        """The rows of ``blame``, in `PICTURE_SETS`' order (the causes first): per set its `row_title` ("flipped to
        wrong since the previous check: 16 of 1,227 shown: the 16 smallest margins" when cut; all four sets, empty
        ones too) and its ``blame_size`` samples of smallest margin, smallest first, each with
        its label, prediction and margin (`blamed_samples`) and its picture read from ``dataset`` (rank zero). If
        any input is no picture, no cell has one (and a short vector its values): the sets are drawn as a table.
        Empty, with one warning for the run, without a dataset."""
        if dataset is None:
            self._say_once(
                trainer,
                "dataset",
                "blame grids need the samples by index; with `dataloader=` none is drawn "
                "(pass `dataset=`). The blamed indices are in the per-check file (save_margins=...).",
            )
            return []
        entries = blamed_samples(blame, margin_pass, self.blame_size)
        rows: list[tuple[str, list[BlameCell]]] = []
        inputs = []
        for key, title in PICTURE_SETS.items():
            entry = entries[key]
            cells = []
            for index, target, predicted, margin in zip(
                entry["index"].tolist(),
                entry["target"].tolist(),
                entry["predicted"].tolist(),
                entry["margin"].tolist(),
                strict=True,
            ):
                value = self.to_image(dataset[index])
                inputs.append(value)
                cells.append(BlameCell(index, target, predicted, as_picture(value), margin, WHY[key]))
            rows.append((row_title(title, len(cells), entry["total"]), cells))
        if any(cell.picture is None for _, cells in rows for cell in cells):  # a table: no picture at all
            values = iter(inputs)
            rows = [
                (name, [replace(cell, picture=None, values=short_values(next(values))) for cell in cells])
                for name, cells in rows
            ]
        return rows

    def log_grid(
        self,
        trainer: pl.Trainer,
        dataset: Dataset | None,
        blame: BlameSets,
        margin_pass: MarginPass,
        epoch: int,
        step: int,
    ) -> list[tuple[str, list[BlameCell]]]:
        """Log the blame grid (or table) of an instability event as ``stability/blame`` (rank zero), one rendered
        image for every logger; returns its rows."""
        if not trainer.is_global_zero:
            return []
        if not self._drawable():
            self._say_once(trainer, "pillow", "blame grids need Pillow (`pip install pillow`).")
            return []
        rows = self.cells(trainer, dataset, blame, margin_pass)
        if rows:
            shown = [key for key, (_, cells) in zip(PICTURE_SETS, rows, strict=True) if cells]
            pictures = all(cell.picture is not None for _, cells in rows for cell in cells)
            title = blame_title(epoch, shown, pictures)
            log_figure(trainer, "stability/blame", lambda: blame_figure(rows, title), step)
        return rows

    def file_entries(
        self,
        trainer: pl.Trainer,
        dataset: Dataset | None,
        blame: BlameSets,
        margin_pass: MarginPass,
        rows: list[tuple[str, list[BlameCell]]] | None,
    ) -> dict[str, Any]:
        """What the per-check file holds about blame: ``blame`` (every set's indices) and ``blame_cells``
        (`blamed_samples`). Results only, never the data: neither ``dataset`` nor the grid's ``rows`` are read."""
        return {"blame": blame.as_dict(), "blame_cells": blamed_samples(blame, margin_pass, self.blame_size)}

    @staticmethod
    def _drawable() -> bool:
        try:
            import PIL  # noqa: F401
        except ImportError:
            return False
        return True
