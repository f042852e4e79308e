"""Publish: everything the `StabilityMonitor` shows, in one place (docs/design.md). Per check, in one pass: the
scalars (every logger, and ``trainer.callback_metrics`` at an epoch end), the run's constants, the text summary, the
run-so-far picture, the margin histogram, the envelope figure, the blame grid of an instability event, the
per-check margin file and, last, what the check cost — the monitor hands over one `Publication` and gets the cost
and the console line back. Per run: the hyperparameters before training, the dashboard layout, ``samples.csv`` and
the final values at fit end. Every figure is drawn once for every logger (`lightning_stability.figures.render`) from
values the check computed; rank zero writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.data import Dataset

from ..assess import CheckResult, ExactCheck, InstabilityHistory
from ..assess.envelopes import envelope_curves
from ..assess.names import DASHBOARD, FINAL, final_values
from ..dynamics.samples import SampleStatistics
from ..figures.envelope import envelope_figure
from ..figures.headline import CheckPoint, headline_picture
from ..files import save_margin_file, save_samples_csv
from ..loggers import (
    MLflowAdapter,
    WandbAdapter,
    adapter_for,
    declare_final,
    log_constants,
    log_figure,
    log_final,
    log_histogram,
    log_layout,
    log_text,
)
from ..scalars import log_check_scalars
from ..stability_tab.page import page_html
from ..stability_tab.sources import run_margin_files
from ..stability_tab.verdict import stop_line
from ..stability_tab.view import STOP_TAG, run_view
from ..summaries import check_texts
from ..theory import StabilityReport
from .base import same_on_every_rank
from .blame_pictures import BlamePictures
from .check_cost import CheckCost

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["SAMPLES_FILE", "CheckPublisher", "Publication"]

SAMPLES_FILE = "samples.csv"


@dataclass(frozen=True)
class Publication:
    """What one check publishes, as the monitor hands it over.

    Attributes:
        result: the assessed check; ``metrics``: its scalars, the same on every rank.
        history: the instability history, this check included (the run-so-far picture, the events so far).
        step: its logger step; ``in_epoch_end``: whether it runs in ``on_train_epoch_end`` (then its scalars also
            go into ``trainer.callback_metrics``).
        constants: the run's constants, logged once per kind of check (``None``: already logged).
        dataset: the samples by index, for the blame grid's pictures (``None`` with ``dataloader=``).
        margins_dir: where the margin file goes (``None``: no file).
        approximate: the training data is random (every text says so); ``full_checks``: the statistical mode
            has full checks scheduled; ``scope``: what the certified set is, where it is not every sample.
        clock: when the check started, when its pass ended and when its assessment ended (`CheckCost.clock`).
        stopping: the sentence that says this check stops training (``None``: it does not).
    """

    result: CheckResult
    metrics: dict[str, float]
    history: InstabilityHistory
    step: int
    in_epoch_end: bool
    constants: dict[str, Any] | None
    dataset: Dataset | None
    margins_dir: Path | None
    approximate: bool
    full_checks: bool
    scope: str
    clock: tuple[float, float, float]
    stopping: str | None = None


class CheckPublisher:
    """The output of a `StabilityMonitor`'s checks.

    Args:
        histogram: log ``stability/margins`` as a histogram at every exact check.
        figure: log the envelope figure ``stability/envelopes`` at every exact check.
        pictures: the blame grid's and margin files' pictures of the blamed samples.
        logger_only: the prefixes of the scalars that go to the loggers only, not into ``callback_metrics``.
    """

    def __init__(
        self, histogram: bool, figure: bool, pictures: BlamePictures, logger_only: tuple[str, ...] = ()
    ) -> None:
        self.histogram, self.figure, self.pictures, self.logger_only = histogram, figure, pictures, logger_only

    def declare_run(self, trainer: pl.Trainer, hyperparameters: dict[str, Any]) -> None:
        """Before training (``on_fit_start``, before Lightning logs the model's hyperparameters: TensorBoard's
        HParams keeps a run's first summary): the hyperparameters and the names of the final values."""
        declare_final(trainer, hyperparameters, list(FINAL))

    def start_run(self, trainer: pl.Trainer) -> None:
        """When training starts: the dashboard layout, on the loggers that have one."""
        log_layout(trainer, DASHBOARD)

    def finish_run(
        self,
        trainer: pl.Trainer,
        statistics: SampleStatistics,
        samples_dir: Path | None,
        report: StabilityReport | None,
        constants: dict[str, Any],
        history: InstabilityHistory,
        stop_reason: str | None,
    ) -> Path | None:
        """At fit end: ``samples.csv`` into ``samples_dir`` (rank zero, after a check) and the run's constants with
        its final values (`lightning_stability.assess.names.final_values`: the last exact check's accuracy and
        floors, the events, whether the monitor stopped training and the largest accuracy drop); returns the file
        written."""
        path = None
        if samples_dir is not None and trainer.is_global_zero and statistics.checks:
            path = save_samples_csv(Path(samples_dir) / SAMPLES_FILE, statistics.result())
        if report is not None:
            final = final_values(report, history.count, history.checks, stop_reason is not None)
            log_final(trainer, constants, final)
        return path

    def publish_stop(self, trainer: pl.Trainer, reason: str, step: int) -> None:
        """A check that stopped training without a certificate (non-finite outputs): the text summary says so."""
        log_text(trainer, "stability/summary", f"**Training stopped**: {reason}", step)

    def publish_page(
        self, trainer: pl.Trainer, stop_reason: str | None, patience: int, margins_dir: Path | None
    ) -> str | None:
        """At fit end, after `finish_run`: why training stopped (if it did), as the text ``stability/stop`` that the
        Stability tab shows (its first line `lightning_stability.stability_tab.verdict.stop_line`, then
        ``stop_reason``), and the Stability page of the run's margin files in ``margins_dir`` as an artifact
        ``stability.html`` of MLflow and a ``wandb.Html`` on W&B (TensorBoard has the tab; the ``fit`` command
        writes the page beside ``report.png``). Returns the page; ``None`` without an MLflow or W&B logger, without
        margin files, and off rank zero (the page is built only for them)."""
        stop = None
        if stop_reason:
            stop = f"{stop_line(stop_reason, trainer.current_epoch - 1, patience)}\n{stop_reason}"
            log_text(trainer, STOP_TAG, stop, trainer.global_step)
        targets = [
            adapter
            for adapter in map(adapter_for, trainer.loggers)
            if isinstance(adapter, MLflowAdapter | WandbAdapter)
        ]
        if not targets or margins_dir is None or not margins_dir.is_dir() or not trainer.is_global_zero:
            return None
        files = run_margin_files(margins_dir, margins_dir)
        if not files:
            return None
        name = margins_dir.parent.name if margins_dir.name == "margins" else margins_dir.name
        page = page_html([run_view(name, {}, {STOP_TAG: [(0, stop)]} if stop else {}, files)], f"Stability: {name}")
        for adapter in targets:
            adapter.page(trainer, "stability", page)
        return page

    def publish(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, publication: Publication, cost: CheckCost
    ) -> tuple[dict[str, float], str]:
        """Log and write everything of ``publication`` (see the module doc), then its cost (``stability_cost/…``,
        the same on every rank, logged to the loggers only); returns the cost (``{}`` when not logged) and the
        check's console line."""
        result, step, history = publication.result, publication.step, publication.history
        log_check_scalars(
            trainer,
            pl_module,
            publication.metrics,
            step=step,
            epoch=result.epoch,
            in_epoch_end=publication.in_epoch_end,
            logger_only=self.logger_only,
        )
        if publication.constants is not None:
            log_constants(trainer, publication.constants)
        summary, line = check_texts(
            result, history.epochs, history.count, publication.approximate, publication.full_checks, publication.scope
        )
        if publication.stopping is not None:
            summary, line = f"{summary} **{publication.stopping}**", f"{line}; {publication.stopping}"
        log_text(trainer, "stability/summary", summary, step)
        if result.exact:
            self._exact_check(trainer, publication, result)
        started, passed, assessed = publication.clock
        spent = cost.metrics(started, passed, assessed, cost.clock())  # after everything it counts
        if spent:
            spent = same_on_every_rank(trainer, spent)
            log_check_scalars(trainer, pl_module, spent, step=step, epoch=result.epoch, in_epoch_end=False)
        return spent, line

    def _exact_check(self, trainer: pl.Trainer, publication: Publication, result: ExactCheck) -> None:
        """The pictures and the margin file of an exact check."""
        step = publication.step
        if publication.history.checks:
            points = [CheckPoint(int(c[0]), (c[1], c[2], c[3], c[4]), bool(c[5])) for c in publication.history.checks]
            stopped_at = result.epoch if publication.stopping is not None else None
            picture = lambda: headline_picture(points, stopped_at=stopped_at)  # noqa: E731 (drawn if shown)
            log_figure(trainer, "stability/accuracy_and_floors", picture, step)
        margin_pass, report = result.margin_pass, result.report
        if self.histogram:
            log_histogram(trainer, "stability/margins", margin_pass.margins, step)
        if self.figure:
            margins, mu, epoch = margin_pass.margins.cpu(), result.mu.cpu(), result.epoch
            drawn = lambda: envelope_figure(envelope_curves(report), margins, mu, epoch)  # noqa: E731 (drawn if shown)
            log_figure(trainer, "stability/envelopes", drawn, step)
        blame = result.blame
        rows = None
        if result.comparison.event and blame is not None:
            rows = self.pictures.log_grid(trainer, publication.dataset, blame, margin_pass, result.epoch, step)
        if publication.margins_dir is not None and blame is not None and trainer.is_global_zero:
            blamed = self.pictures.file_entries(trainer, publication.dataset, blame, margin_pass, rows)
            event = {"instability": float(result.comparison.event)}  # the monitor's own verdict, with its tol
            stopping = {} if publication.stopping is None else {"stopping": publication.stopping}
            extra = {**blamed, **event, **stopping}  # the file says that this check stopped training
            save_margin_file(publication.margins_dir, result.epoch, step, margin_pass, report, extra=extra)
