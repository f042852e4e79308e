"""Publish: what one check shows beyond its scalars, rendered once and handed to every logger and the file writer
(docs/design.md): the text summary, the margin histogram, the envelope figure, the blame grid of an instability
event and the per-check margin file (rank zero writes; see `lightning_stability.loggers`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from torch.utils.data import Dataset

from ..assess import CheckResult
from ..figures.envelope import envelope_figure
from ..figures.headline import CheckPoint, headline_picture
from ..files import save_margin_file
from ..loggers import log_figure, log_histogram, log_text
from .blame_pictures import BlamePictures

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["CheckPublisher"]


class CheckPublisher:
    """The non-scalar output of a `StabilityMonitor`'s checks.

    Args:
        histogram: log ``stability/margins`` as a histogram at every exact check.
        figure: log the envelope figure ``stability/envelopes`` at every exact check.
        pictures: the blame grid's and margin files' pictures of the blamed samples.
    """

    def __init__(self, histogram: bool, figure: bool, pictures: BlamePictures) -> None:
        self.histogram, self.figure, self.pictures = histogram, figure, pictures

    def publish(
        self,
        trainer: pl.Trainer,
        result: CheckResult,
        summary: str,
        step: int,
        dataset: Dataset | None,
        margins_dir: Path | None,
        series: Sequence[tuple[int, float, float, float, float, bool]] = (),
    ) -> None:
        """Log ``summary`` as ``stability/summary`` and, for an exact check, the run-so-far picture of ``series``
        (every exact check's epoch, accuracy, floors and event), the histogram, the figure, the blame grid (at an
        instability event) and the margin file (into ``margins_dir``, if given)."""
        log_text(trainer, "stability/summary", summary, step)
        if not result.exact:
            return
        if series:
            points = [CheckPoint(int(c[0]), (c[1], c[2], c[3], c[4]), bool(c[5])) for c in series]
            log_figure(trainer, "stability/accuracy_and_floors", lambda: headline_picture(points), step)
        margin_pass, report = result.margin_pass, result.report
        if self.histogram:
            log_histogram(trainer, "stability/margins", margin_pass.margins, step)
        if self.figure:
            margins, mu, epoch = margin_pass.margins.cpu(), result.mu.cpu(), result.epoch
            log_figure(trainer, "stability/envelopes", lambda: envelope_figure(report, margins, mu, epoch), step)
        blame = result.blame
        rows = None
        if result.comparison.event and blame is not None:
            rows = self.pictures.log_grid(trainer, dataset, blame, margin_pass, result.epoch, step)
        if margins_dir is not None and blame is not None and trainer.is_global_zero:
            blamed = self.pictures.file_entries(trainer, dataset, blame, margin_pass, rows)
            event = {"instability": float(result.comparison.event)}  # the monitor's own verdict, with its tol
            save_margin_file(margins_dir, result.epoch, step, margin_pass, report, extra={**blamed, **event})
