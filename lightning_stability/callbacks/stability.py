"""StabilityMonitor: certify the training accuracy's stability at epoch end (docs/theory.md §1–§8).

A check flows one way (docs/design.md): **collect** the margin pass (`MarginSource`), **assess** it
(`lightning_stability.assess.assess_check`, pure), **publish** the scalars, text, pictures and files, **decide**
whether to stop (`lightning_stability.assess.Patience`, reduced across processes). The state across checks lives
in objects that own their ``state_dict``: the instability history, the stop rule, the subset draw, the per-sample
statistics and the cost clock.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .. import theory
from ..assess import CheckResult, CheckSettings, InstabilityHistory, Patience, assess_check, sample_weights
from ..assess.names import DASHBOARD, FINAL, run_constants, subset_constants
from ..data_check import check_data_settings, run_data_check
from ..distributions import MisconfigurationError
from ..dynamics.samples import SampleDynamics, SampleStatistics
from ..files import save_samples_csv
from ..loggers import declare_final, log_constants, log_final, log_layout
from ..records import MarginPass
from ..summaries import check_texts, instability_reason, scope_sentence
from .base import EpochMonitor
from .blame_pictures import BlamePictures
from .check_cost import CheckCost
from .collect import MarginSource
from .data_probe import PROBE_SIZE, reads_differ, stochastic_data_message
from .margin_pass import ForwardFn, default_forward
from .publish import CheckPublisher
from .run_outputs import RunOutputs
from .setup_checks import (
    label_problem,
    label_smoothing_note,
    no_certificate_reason,
    probability_outputs,
    same_kind_monitors,
    schedule_never_checks,
    ties_note,
)
from .stability_options import STABILITY_DOC, StabilityOptionAttributes, validate_stability_options
from .stability_state import STABILITY_STATE, StabilityState
from .subset_draw import SubsetDraw

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["StabilityMonitor"]

Weights = Literal["uniform", "balanced"] | Tensor | None

DYNAMICS_PREFIXES = ("stability/sharpness/", "stability/parametrization/", "stability/gradient_flow/")
"""The dynamics monitors' names, which share the ``stability/`` prefix."""

SAMPLES_FILE = "samples.csv"


class StabilityMonitor(StabilityOptionAttributes, StabilityState, EpochMonitor):
    __doc__ = STABILITY_DOC

    checkpoint_state = (*EpochMonitor.checkpoint_state, *STABILITY_STATE)
    metric_prefixes = (
        "stability/",
        "stability_events/",
        "stability_margins/",
        "stability_diagnostics/",
        "stability_estimate/",
        "stability_cost/",
    )
    logger_only_prefixes = ("stability_diagnostics/", "stability_cost/")

    def __init__(
        self,
        *,
        # which samples
        dataset: Dataset | None = None,
        dataloader: DataLoader | None = None,
        weights: Weights = None,
        ignore_index: int | None = -100,
        forward_fn: ForwardFn | None = None,
        batch_size: int | None = None,
        num_workers: int = 0,
        stochastic_data: Literal["error", "approximate"] = "error",
        # when
        every_n_epochs: int = 1,
        check_at_start: bool = True,
        # what counts as an event, and stopping on it
        tol: float = 0.0,
        stop_on_instability: bool = False,
        patience: int = 1,
        # what to log
        verbose: bool = False,
        quantiles: tuple[float, ...] = (0.01, 0.05, 0.5),
        log_histogram: bool = True,
        log_figure: bool = False,
        log_cost: bool = True,
        blame_size: int = 16,
        to_image: Any = None,
        # what to save
        save_margins: bool | str | Path | None = None,
        save_samples: bool | None = None,
        sample_history: bool = False,
        # the certificate and the data
        grid: dict[str, Any] | None = None,
        check_data: bool | dict[str, Any] = False,
        # the statistical mode
        subset_size: int | None = None,
        confidence: float = 0.95,
        full_every_n_epochs: int | None = None,
        subset_seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs=every_n_epochs, check_at_start=check_at_start, verbose=verbose)
        validate_stability_options(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        check_data_settings(check_data)
        self.dataset, self.dataloader, self.weights = dataset, dataloader, weights
        self.tol, self.patience, self.stop_on_instability = float(tol), patience, stop_on_instability
        self.stochastic_data, self.check_data = stochastic_data, check_data
        self.subset_size, self.full_every_n_epochs = subset_size, full_every_n_epochs
        self.settings = CheckSettings(float(tol), dict(grid or {}), tuple(quantiles), confidence, blame_size)
        self.source = MarginSource(
            dataset, dataloader, batch_size, num_workers, forward_fn or default_forward, ignore_index
        )
        self.resolved_weights: str | Tensor = "uniform"
        self.weights_source = "uniform"
        self.outputs = RunOutputs(save_margins, save_samples, bool(check_data))
        self.publisher = CheckPublisher(log_histogram, log_figure, BlamePictures(blame_size, to_image))
        self.draw = SubsetDraw(subset_size or 0, full_every_n_epochs, subset_seed)
        self.statistics = SampleStatistics(keep_history=bool(sample_history))
        self.cost = CheckCost(log_cost)
        self._start_run()

    def _start_run(self) -> None:
        """The state of one fit's checks, empty: at construction and when a later fit starts afresh."""
        self.history = InstabilityHistory()
        self.stop_rule = Patience(self.patience, self.stop_on_instability)
        self.draw = SubsetDraw(self.subset_size or 0, self.full_every_n_epochs, self.draw.seed)
        self.cost = CheckCost(self.cost.enabled)
        self.approximate = False
        self.data_report: theory.DataClusterReport | None = None
        self.last_report: theory.StabilityReport | None = None
        self.last_estimate: theory.SubsetEstimate | None = None
        self.last_pass: MarginPass | None = None
        self.last_cost: dict[str, float] = {}
        self._constants_logged: set[bool] = set()  # which kinds of check (exact: True) logged their constants
        self._no_certificate = False  # a check found non-finite outputs (or nothing to certify) and stopped
        self._ties_noted = False

    # ------------------------------------------------------------------ what users and readers see

    @property
    def run_dir(self) -> Path | None:
        """This run's output directory, if a file goes there."""
        return self.outputs.run_dir

    def margins_dir(self, trainer: pl.Trainer) -> Path | None:
        """Where the margin files go (see `lightning_stability.callbacks.run_outputs.RunOutputs.margins_dir`)."""
        return self.outputs.margins_dir(trainer)

    def sample_dynamics(self) -> SampleDynamics:
        """Per-sample statistics over the checks so far (docs/samples.md): last margin, ``aum``, forgetting events,
        first learned check, cartography confidence/variability, correctness, predicted class; ``.to_pandas()``."""
        return self.statistics.result()

    def owns_metric(self, name: str) -> bool:
        """``stability/…`` and ``stability_diagnostics/…``, except the dynamics monitors' ``stability/<kind>/…``."""
        return super().owns_metric(name) and not name.startswith(DYNAMICS_PREFIXES)

    def metric_period(self, name: str) -> int | None:
        """In the statistical mode the exact values (``stability/…``) are logged after every
        ``lcm(every_n_epochs, full_every_n_epochs)``-th epoch only (never without ``full_every_n_epochs``), the
        estimates (``stability_estimate/…``) after the other checked epochs (a fixed period only without full
        checks); the cost after every check."""
        if self.subset_size is None or name.startswith("stability_cost/"):
            return self.every_n_epochs
        full = self.full_every_n_epochs
        if name.startswith("stability_estimate/"):
            return self.every_n_epochs if full is None else None
        return None if full is None else math.lcm(self.every_n_epochs, full)

    def metric_schedule(self, name: str) -> str:
        if self.subset_size is None:
            return super().metric_schedule(name)
        return (
            f"subset_size={self.subset_size}, every_n_epochs={self.every_n_epochs}, "
            f"full_every_n_epochs={self.full_every_n_epochs}: exact values after the full checks only, estimates "
            "after the other checks"
        )

    # ------------------------------------------------------------------ checkpoint state

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_epochs=self.every_n_epochs, tol=self.tol, weights=self._weights_key)

    @property
    def _weights_key(self) -> str:
        if self.weights is None:
            return "uniform"  # the key of earlier versions' default, so their checkpoints still restore
        return self.weights if isinstance(self.weights, str) else "tensor"

    def _constants(self, report: theory.StabilityReport) -> dict[str, Any]:
        return run_constants(report, self.every_n_epochs, self.weights_source, self.tol, self.approximate)

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Choose this run's output directory (files of one run never mix with another's) and check that every
        directory the monitor will write to is writable — before training."""
        if stage == "fit":
            refusal = same_kind_monitors(getattr(trainer, "callbacks", []), self)
            if refusal is not None:
                raise self.error(refusal)
        super().setup(trainer, pl_module, stage)
        if stage == "fit":
            self.outputs.setup(trainer)

    def reset_for_new_fit(self, same_model: bool) -> None:
        """A later ``fit`` is a run of its own (its epochs, logger steps, files and stop decision): the checks,
        events, stop rule, subset draw, data check and every ``last_*`` value start afresh. The per-sample
        statistics (``aum``, forgetting events, …) follow the model: kept when the fit trains the same
        LightningModule object (notebook style: fit, lower the learning rate, fit again), started afresh for another
        one (docs/guide.md, "A second fit")."""
        super().reset_for_new_fit(same_model)
        self._start_run()
        if not same_model:
            self.statistics = SampleStatistics(keep_history=self.statistics.keep_history)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # before Lightning logs the model's hyperparameters: TensorBoard's HParams keeps a run's first summary
        params: dict[str, Any] = dict(dict(getattr(pl_module, "hparams_initial", {}) or {}))
        params.update(
            {
                "stability/every_n_epochs": self.every_n_epochs,
                "stability/tol": self.tol,
                "stability/weights": self._weights_key if self.weights is not None else "sampler or uniform",
            }
        )
        declare_final(trainer, params, list(FINAL))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log_layout(trainer, DASHBOARD)
        self._constants_logged = set()
        if self.check_data and self.data_report is None and trainer.current_epoch == 0:
            data = self.source.training_data(trainer)
            settings = self.check_data if isinstance(self.check_data, dict) else {}
            output_dir = self.outputs.data_check_dir(trainer)
            self.data_report = run_data_check(trainer, pl_module, data.dataset, data.collate_fn, settings, output_dir)
        super().on_train_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.cost.start_epoch()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        finished = trainer.current_epoch - 1  # the last finished epoch: its weights are the final ones
        checked = -1 if self.last_checked_epoch is None else self.last_checked_epoch
        if finished > checked and not self._no_certificate:  # the final weights are always checked
            self.run_check(trainer, pl_module, finished, in_epoch_end=False)
        directory = self.outputs.samples_dir(trainer)
        if directory is not None and trainer.is_global_zero and self.checks_done:
            path = save_samples_csv(Path(directory) / SAMPLES_FILE, self.statistics.result())
            self.info(trainer, f"per-sample dynamics: {path}")
        report = self.last_report
        if report is not None:
            values = (report.accuracy, report.loss_floor, report.theorem_a.floor, report.theorem_b.floor)
            final = dict(zip(FINAL, (*values, float(self.history.count)), strict=True))
            log_final(trainer, self._constants(report), final)

    def validate_setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Check ``weights`` against the dataset's length, and stop before training if the training data is random
        (two reads of one batch differ, `lightning_stability.callbacks.data_probe`) unless
        ``stochastic_data="approximate"`` accepts it (then every summary says so)."""
        self.resolved_weights, self.weights_source = self.source.resolve_weights(trainer, self.weights)
        if self.outputs.smoke_test:
            self.warn(
                trainer,
                f"fast_dev_run: every margin pass covers only the first {int(getattr(trainer, 'fast_dev_run', 1))} batch(es), so "
                "the numbers are not the whole training set's; no files are written.",
            )
        never = schedule_never_checks(trainer.max_epochs, self.every_n_epochs, self.check_at_start)
        if never is not None:
            self.warn(trainer, never)
        loader = self.source.loader(trainer, batch_size=PROBE_SIZE)
        probe = reads_differ(trainer, pl_module, loader, self.source.forward_fn)
        labels = label_problem(probe.indices, probe.logits, probe.targets, self.ignore_index, self.source.excluded)
        if labels is not None:
            raise MisconfigurationError(labels)
        for note in (probability_outputs(probe.logits), label_smoothing_note(pl_module)):
            if note is not None:
                self.warn(trainer, note)
        self.approximate = probe.stochastic
        if not probe.stochastic:
            return
        if self.stochastic_data != "approximate":
            raise self.error(stochastic_data_message(probe.indices.numel(), self.dataloader is not None))
        self.warn(
            trainer,
            "the training samples differ between two passes (random augmentation?): every check certifies one "
            "random draw of the data, so its numbers are APPROXIMATE and an instability event may be noise.",
        )

    # ------------------------------------------------------------------ the check: collect → assess → publish → decide

    def run_check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, in_epoch_end: bool) -> None:
        exact = self.subset_size is None or self.draw.is_full(epoch)
        started = self.cost.clock()
        counts = None
        if exact:  # collect
            margin_pass = self.source.run(trainer, pl_module)
        else:
            mu = self.source.draw_weights(self.resolved_weights)
            indices, _ = self.draw.draw(self.source.num_samples(trainer), mu)
            margin_pass = self.source.run(trainer, pl_module, indices)
            counts = self.draw.counts_of(margin_pass.indices)
        passed = self.cost.clock()
        if margin_pass.non_finite.numel() or not margin_pass.indices.numel():
            self._stop_without_certificate(trainer, margin_pass, epoch)
            return
        forgotten = self.statistics.update(  # assess
            margin_pass.indices, margin_pass.targets, margin_pass.margins, margin_pass.losses, margin_pass.predicted
        )
        result = assess_check(
            margin_pass,
            sample_weights(self.resolved_weights, margin_pass, self.dataloader is not None) if exact else None,
            self.settings,
            epoch=epoch,
            exact=exact,
            previous=self.history.previous if exact else self.history.subset_previous,
            instability_count=self.history.count if exact else self.history.subset_count,
            checks_done=self.checks_done,
            forgotten=forgotten,
            draw_counts=counts,
            blame=self.outputs.margins_dir(trainer) is not None,
            data_cluster=None if self.data_report is None else self.data_report.witness_indices,
        )
        assessed = self.cost.clock()
        stop = self.stop_rule.update(result.comparison.event)
        reason = self._record(trainer, result)
        step = self._publish(trainer, pl_module, result, in_epoch_end)
        cost = self.cost.metrics(started, passed, assessed, self.cost.clock())  # after everything it counts
        if cost:
            self.last_cost = self.same_on_every_rank(trainer, cost)
            self.log_metrics(trainer, pl_module, self.last_cost, in_epoch_end=False, epoch=epoch, step=step)
        self.decide_stop(trainer, stop, reason)  # decide

    def _stop_without_certificate(self, trainer: pl.Trainer, margin_pass: MarginPass, epoch: int) -> None:
        """Non-finite class scores (or nothing left to certify): no certificate, training stops as with
        ``EarlyStopping(check_finite=True)``; the files written so far stay, ``samples.csv`` is written at fit end."""
        reason = no_certificate_reason(margin_pass, epoch, self.ignore_index)
        self.warn(trainer, reason)
        self._no_certificate = True
        self.decide_stop(trainer, True, reason)

    def _record(self, trainer: pl.Trainer, result: CheckResult) -> str | None:
        """Take the check into the history; warn what changed. Returns the stop reason of an event."""
        comparison, accuracy = result.comparison, result.report.accuracy
        if result.exact:
            if comparison.samples_changed:
                self.warn(trainer, "the certified samples changed since the previous check; flip masses skipped.")
            report = result.report
            floors = (report.loss_floor, report.theorem_a.floor, report.theorem_b.floor)
            self.history.record_exact(result.epoch, comparison, result.margin_pass, result.loss, accuracy, floors)
            checked = result.margin_pass
            ties = None if self._ties_noted else ties_note(checked.margins, checked.targets, checked.predicted)
            if ties is not None:
                self._ties_noted = True
                self.warn(trainer, ties)
        else:
            assert result.estimate is not None
            self.history.record_subset(comparison, result.loss, result.estimate.accuracy)
        if not comparison.event:
            return None
        reason = instability_reason(result, self.stop_rule.consecutive, self.patience, self.tol)
        self.warn(trainer, reason)
        return reason

    def _publish(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        result: CheckResult,
        in_epoch_end: bool,
    ) -> int:
        """Log, show and save the check; returns its logger step."""
        metrics = result.metrics if result.exact else self.same_on_every_rank(trainer, result.metrics)
        self.finish_check(metrics, result.epoch)
        self.last_pass = result.margin_pass
        if result.exact:
            self.last_report = result.report
        else:
            self.last_estimate = result.estimate
        step = self.log_step(trainer)
        self.log_metrics(trainer, pl_module, metrics, in_epoch_end=in_epoch_end, epoch=result.epoch, step=step)
        if result.exact not in self._constants_logged:
            log_constants(
                trainer,
                self._constants(result.report)
                if result.exact
                else subset_constants(result.estimate, self.full_every_n_epochs),
            )
            self._constants_logged.add(result.exact)
        summary, line = check_texts(
            result,
            self.history.epochs,
            self.history.count,
            self.approximate,
            self.full_every_n_epochs is not None,
            scope=" ".join(
                part
                for part in (
                    self.source.support_sentence(),
                    scope_sentence(result.margin_pass.ignored, self.weights_source, self.ignore_index),
                )
                if part
            ),
        )
        dataset = self.source.samples_by_index(trainer)
        margins_dir = self.outputs.margins_dir(trainer)
        self.publisher.publish(trainer, result, summary, step, dataset, margins_dir, self.history.checks)
        self.info(trainer, line)
        return step
