"""Publish, per-sample part: the pictures of the samples a check blames (docs/samples.md).

At an instability event the `StabilityMonitor` logs the blame sets (`lightning_stability.records.BlameSets`) as an
image grid with labels and predictions (a figure, through `lightning_stability.loggers.log_figure`, so every logger
shows it natively). The per-check margin file holds the blamed samples' results (`blamed_samples`: index, label,
prediction, margin, which set), never their inputs. Only global rank zero reads the blamed samples' inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from ..distributions import rank_zero_warn
from ..figures.blame_grid import BlameCell, as_picture, blame_figure, default_to_image
from ..loggers import log_figure
from ..records import BLAME_SETS, BlameSets, MarginPass

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["BlamePictures", "blamed_samples"]


def blamed_samples(blame: BlameSets, margin_pass: MarginPass, size: int) -> dict[str, dict[str, Any]]:
    """Per blame set (`BLAME_SETS`' keys, all four), its first ``size`` samples as the margin file's ``blame_cells``
    entry: ``index``, ``target``, ``predicted`` (int64) and ``margin`` (float64) of each, looked up in
    ``margin_pass`` (``-1`` and NaN for an index it lacks), with ``why`` (the set's title) and ``total`` (the set's
    size). Fresh tensors of ``size`` entries at most: nothing of the dataset."""
    indices = margin_pass.indices.detach().cpu()
    entries = {}
    for key, title in BLAME_SETS.items():
        members = getattr(blame, key)
        chosen = members[:size].detach().cpu().to(torch.long).clone()
        positions = torch.searchsorted(indices, chosen).clamp(max=max(indices.numel() - 1, 0))
        found = indices[positions] == chosen if indices.numel() else torch.zeros(chosen.shape, dtype=torch.bool)
        entries[key] = {
            "index": chosen,
            "target": _look_up(margin_pass.targets, positions, found, -1, torch.long),
            "predicted": _look_up(margin_pass.predicted, positions, found, -1, torch.long),
            "margin": _look_up(margin_pass.margins, positions, found, math.nan, torch.float64),
            "why": title,
            "total": int(members.numel()),
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
        """The grid rows of ``blame`` (at most ``blame_size`` samples each), read from ``dataset`` (rank zero);
        empty, with one warning for the run, when the samples cannot be drawn."""
        if dataset is None:
            self._say_once(
                trainer,
                "dataset",
                "blame grids need the samples by index; with `dataloader=` none is drawn "
                "(pass `dataset=`). The blamed indices are in the per-check file (save_margins=...).",
            )
            return []
        rows = []
        for key, title in BLAME_SETS.items():
            indices = getattr(blame, key)[: self.blame_size]
            cells = []
            for index in indices.tolist():
                picture = as_picture(self.to_image(dataset[index]))
                if picture is None:
                    self._say_once(
                        trainer,
                        "picture",
                        "the training inputs are neither images ([C, H, W], [H, W], a flattened "
                        "square) nor short vectors, so no blame grid is drawn; pass `to_image=lambda item: ...` "
                        "returning an image tensor. The blamed indices are in the per-check file (save_margins=...).",
                    )
                    return []
                position = int(torch.searchsorted(margin_pass.indices, torch.tensor(index)))
                found = position < margin_pass.indices.numel() and int(margin_pass.indices[position]) == index
                target = int(margin_pass.targets[position]) if found else -1
                predicted = int(margin_pass.predicted[position]) if found else -1
                cells.append(BlameCell(index=index, target=target, predicted=predicted, picture=picture))
            rows.append((f"{title} ({getattr(blame, key).numel()})", cells))
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
        """Log the blame grid of an instability event as ``stability/blame`` (rank zero); returns its rows."""
        if not trainer.is_global_zero:
            return []
        if not self._drawable():
            self._say_once(trainer, "matplotlib", "blame grids need matplotlib (`pip install matplotlib`).")
            return []
        rows = self.cells(trainer, dataset, blame, margin_pass)
        if rows:
            title = f"instability at epoch {epoch}: samples to blame (label → prediction)"
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
            import matplotlib  # noqa: F401
        except ImportError:
            return False
        return True
