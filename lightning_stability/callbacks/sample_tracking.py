"""The `StabilityMonitor`'s per-sample part: which samples carry the instability (docs/samples.md).

At every check `SampleTracker.check` folds the margin pass into the per-sample statistics
(`lightning_stability.dynamics.samples.SampleStatistics`) and picks the blame sets of the check — the samples
forgotten since their previous check, the ``blame_size`` worst margins, the samples of the Condition B witness
interval (docs/theory.md §6) and the isolated input cluster of the data check (§9) — as sample indices for the
per-check file. At an instability event it logs them as an image grid with labels and predictions (a figure, through
`lightning_stability.loggers.log_figure`, so every logger shows it natively). At fit end `SampleTracker.save`
writes ``samples.csv``.

Every rank holds the same margin pass, so every rank's statistics are the same without communication; only global
rank zero reads the blamed samples' inputs and writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .. import theory
from ..distributions import rank_zero_warn
from ..dynamics.samples import SampleDynamics, SampleStatistics, worst_margin_samples
from ..files import save_samples_csv
from ..loggers import log_figure
from ..records import BLAME_SETS, BlameSets, MarginPass
from ..sample_plots import BlameCell, as_picture, blame_figure, default_to_image

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["SampleTracker"]

SAMPLES_FILE = "samples.csv"


def witness_samples(
    margin_pass: MarginPass, report: theory.StabilityReport, weights: Tensor | None, grid: theory.CertificateGrid
) -> Tensor:
    """The sample indices inside the Condition B witness interval (docs/theory.md §6) of the report's best Theorem
    B candidate, recomputed with its window, cap, resolution and cluster mass on the certify grid ``grid``; empty
    when no interval is admissible."""
    b = report.theorem_b
    if not (b.max_mass > 0 and math.isfinite(b.kappa_upper) and b.min_width > 0):
        return torch.zeros(0, dtype=torch.long)
    spacing = None if grid.centre_spacing_fraction is None else grid.centre_spacing_fraction * b.min_width
    bracket = theory.condition_b_constant(
        margin_pass.margins,
        b.dilation,
        max_mass=b.max_mass,
        min_width=b.min_width,
        min_cluster_mass=min(b.min_cluster_mass, b.max_mass),
        window_end=b.eta0,
        weights=weights,
        radius_ratio=grid.radius_ratio,
        centre_spacing=spacing,
    )
    return margin_pass.indices[bracket.witness_indices.cpu()]


class SampleTracker:
    """Per-sample statistics, blame sets and their pictures for one `StabilityMonitor`.

    Args:
        blame_size: the number of worst-margin samples blamed per check, and of cells per row of a grid.
        to_image: ``to_image(dataset[i]) -> tensor`` picks the picture of a sample; default `default_to_image`.
        keep_history: keep every check's margins (``O(N × checks)``).
    """

    def __init__(self, blame_size: int, to_image: Callable[[Any], Any] | None, keep_history: bool) -> None:
        self.blame_size = blame_size
        self.to_image = to_image or default_to_image
        self.statistics = SampleStatistics(keep_history=keep_history)
        self.last_blame: BlameSets | None = None
        self._said: set[str] = set()

    def check(
        self,
        margin_pass: MarginPass,
        report: theory.StabilityReport,
        weights: Tensor | None,
        grid: dict[str, Any],
        data_report: theory.DataClusterReport | None,
        *,
        blame: bool = True,
    ) -> tuple[Tensor, BlameSets | None]:
        """Fold ``margin_pass`` into the statistics; return the samples forgotten since their previous check and,
        if ``blame``, this check's blame sets (``grid``: the monitor's overrides of
        `lightning_stability.theory.CertificateGrid`; ``data_report``: the data check's, if any).

        The blame sets cost a second Condition B bracket (the witness interval's samples), so the monitor asks for
        them only when a grid or a per-check file will show them."""
        forgotten = self.statistics.update(
            margin_pass.indices, margin_pass.targets, margin_pass.margins, margin_pass.losses, margin_pass.predicted
        )
        if not blame:
            return forgotten, None
        sets = BlameSets(
            forgotten=forgotten,
            worst=worst_margin_samples(margin_pass.indices, margin_pass.margins, self.blame_size),
            witness=witness_samples(margin_pass, report, weights, theory.CertificateGrid(**grid)),
            data_cluster=(
                torch.zeros(0, dtype=torch.long) if data_report is None else data_report.witness_indices.long().cpu()
            ),
        )
        self.last_blame = sets
        return forgotten, sets

    def flip_sentence(self, forgotten: Tensor, margin_pass: MarginPass) -> str:
        """``"N samples flipped to wrong since the previous check (class c: n, …)."``"""
        count = forgotten.numel()
        if count == 0:
            return "No sample flipped to wrong since the previous check."
        positions = torch.searchsorted(margin_pass.indices, forgotten)
        classes = torch.bincount(margin_pass.targets[positions])
        parts = [f"class {c}: {int(n)}" for c, n in enumerate(classes.tolist()) if n]
        return (
            f"{count} sample{'s' if count != 1 else ''} flipped to wrong since the previous check ({', '.join(parts)})."
        )

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
        """What the per-check file holds about blame: ``blame`` (every set's indices) and ``blame_cells`` (per set,
        the drawn samples' index, label, prediction and picture; ``rows`` if the grid was drawn already)."""
        if rows is None:
            rows = self.cells(trainer, dataset, blame, margin_pass)
        cells = {
            key: {
                "index": torch.tensor([c.index for c in row], dtype=torch.long),
                "target": torch.tensor([c.target for c in row], dtype=torch.long),
                "predicted": torch.tensor([c.predicted for c in row], dtype=torch.long),
                "pictures": [c.picture for c in row],
            }
            for key, (_, row) in zip(BLAME_SETS, rows, strict=False)
        }
        return {"blame": blame.as_dict(), "blame_cells": cells}

    @staticmethod
    def _drawable() -> bool:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return False
        return True

    def result(self) -> SampleDynamics:
        return self.statistics.result()

    def save(self, directory: Path) -> Path:
        """Write ``directory/samples.csv`` (one row per sample seen)."""
        return save_samples_csv(Path(directory) / SAMPLES_FILE, self.statistics.result())
