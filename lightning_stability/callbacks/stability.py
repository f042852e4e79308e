"""StabilityMonitor: certify the training accuracy's stability at epoch end (docs/theory.md §1–§8). A check flows
collect → assess → publish → decide (docs/design.md); the parts that hold a fit's state own their ``state_dict``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .. import theory
from ..assess import (
    CheckSettings,
    InstabilityHistory,
    Patience,
)
from ..assess.names import run_constants
from ..data_check import check_data_settings, run_data_check
from ..dynamics.samples import SampleDynamics, SampleStatistics
from ..records import MarginPass
from .base import EpochMonitor
from .blame_pictures import BlamePictures
from .check_cost import CheckCost
from .check_runner import CheckRequest, CheckRunner
from .collect import MarginSource
from .forward_output import ForwardFn, default_forward
from .publish import CheckPublisher
from .run_outputs import RunOutputs
from .setup_checks import (
    check_setup,
    same_kind_monitors,
    schedule_never_checks,
    smoke_test_note,
)
from .stability_options import upgraded_state, validate_stability_options
from .subset_draw import SubsetDraw

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["StabilityMonitor"]

Weights = Literal["uniform", "balanced"] | Tensor | None


class StabilityMonitor(EpochMonitor):
    r"""Certify, at the end of training epochs, whether the training accuracy reached is stable.

    Every ``every_n_epochs`` epochs (and once when training starts) the monitor runs an exact margin pass over the
    **whole training set** (eval mode, ``torch.inference_mode()``, the trainer's precision, a fixed order; under DDP
    each rank a shard, gathered), calls `lightning_stability.theory.certify` and logs under ``stability/`` the
    accuracy, the loss, the Theorem 0/A/B accuracy floors and the instability flags of docs/theory.md §8. An
    *instability event* is a check whose training loss fell while its accuracy fell by more than ``tol``.

    Args:
        dataset: **Which samples.** The samples to certify (e.g. the training set with evaluation transforms);
            default: the training loader's dataset, restricted to the samples its sampler draws from (a
            ``SubsetRandomSampler`` or an index list: the train part of a split; docs/guide.md).
        dataloader: a finite loader over the samples to certify, iterated as given (not with DDP).
        weights: ``μ``: ``"uniform"``, ``"balanced"`` (each class the same mass) or one non-negative weight per
            dataset sample (weight zero: left out); ``None``: the training loader's ``WeightedRandomSampler``
            weights if it has one (the loss training lowers), else uniform.
        ignore_index: the label of samples outside the certified set (default −100, as ``cross_entropy``);
            ``None``: every label must be a class.
        forward_fn: ``forward_fn(pl_module, batch) -> (logits [B, K], targets [B])``; default ``(pl_module(x), y)``
            for ``(x, y)`` batches, reading a ``logits`` key or attribute of the output.
        batch_size: batch size of the margin pass; default ``max(256, 4 × the training batch size)``.
        num_workers: workers of the margin loader.
        stochastic_data: random training samples (augmentation): ``"error"`` stops before training and says to pass
            ``dataset=`` with evaluation transforms; ``"approximate"`` certifies one draw per check, so labelled.
        every_n_epochs: **When.** Check after every n-th training epoch.
        check_at_start: also check once when training starts (the reference for the first epoch).
        tol: **Events.** The accuracy drop tolerated before a loss decrease counts as an instability event.
        stop_on_instability: stop training after ``patience`` consecutive instability events.
        patience: the consecutive instability events that stop training.
        verbose: **What to log.** Print a one-line summary of every check (rank zero).
        quantiles: margin quantiles to log.
        log_histogram: log ``stability/margins`` as a histogram at every check.
        log_figure: log the empirical ``F`` against the Theorem A and B envelopes (needs matplotlib).
        log_cost: log what each check costs under ``stability_cost/`` (docs/cost.md).
        blame_size: the worst-margin samples each check blames; at an event, ``stability/blame`` shows them
            (docs/samples.md).
        to_image: ``to_image(dataset[i]) -> tensor``, a sample's picture in the blame grids; default the input of
            an ``(x, y)`` item.
        save_margins: **What to save.** A directory (``True``: ``<run directory>/margins``) for one ``.pt`` file
            per check (results, read by ``lightning-stability report``).
        save_samples: write ``samples.csv`` (docs/samples.md) at fit end; ``None`` follows ``save_margins``.
        sample_history: keep every check's per-sample margins in memory (``O(N × checks)``).
        grid: **The certificate and the data.** Overrides of `lightning_stability.theory.CertificateGrid`.
        check_data: once at fit start, look for small isolated clusters in the training inputs (docs/theory.md
            §9); ``True`` uses the defaults, a dict passes settings.
        subset_size: **The statistical mode** (docs/cost.md): draw this many indices once, from ``μ``, and evaluate
            only them at the checks that are not full ones, logging estimates with confidence bounds under
            ``stability_estimate/`` (docs/theory.md §11); ``None``: every check is exact.
        confidence: ``1 − α`` of those bounds.
        full_every_n_epochs: in the statistical mode, the exact full check after every m-th epoch; ``None``: never.
        subset_seed: seed of the statistical mode's draw.

    Attributes:
        every option: readable and settable under its own name, as given; the parts are built from the options
            when a fit starts.
        last_report: the last exact check's `lightning_stability.theory.StabilityReport` (``None`` before one).
        last_estimate: the last subset check's `lightning_stability.theory.SubsetEstimate`.
        last_pass: the last check's margin pass (`lightning_stability.records.MarginPass`).
        last_metrics: every value the last check logged, by logged name (its cost apart: ``last_cost``).
        stop_reason: why the monitor stopped training (``None`` if it did not).
        checks_done: the checks of this fit so far; ``instability_count``, ``instability_epochs``: its events.
        weights_source: where ``μ`` comes from: ``"uniform"``, ``"balanced"``, ``"tensor"``, ``"sampler"`` (a
            ``WeightedRandomSampler``) or ``"sampler indices"`` (an index list with repeats).
        data_report: the data check's `lightning_stability.theory.DataClusterReport` (``check_data=``).

    Raises:
        MisconfigurationError: on invalid options; at setup, for a second monitor of this class; when training
            starts, before the first step: training data not found or not map-style, a sampler whose samples
            cannot be known (pass ``dataset=`` or ``weights=``), ``weights`` of the wrong length, labels outside
            the classes or soft, or an output without class scores (pass ``forward_fn=``).

    Non-finite class scores at a check (a diverged model) raise nothing: the monitor warns, keeps the reason in
    ``stop_reason`` and stops training as ``EarlyStopping(check_finite=True)`` does, keeping every file.

    Example:

        >>> from pytorch_lightning import Trainer
        >>> from lightning_stability import StabilityMonitor
        >>> monitor = StabilityMonitor(every_n_epochs=1, stop_on_instability=True, patience=2)
        >>> trainer = Trainer(callbacks=[monitor], max_epochs=3)  # doctest: +SKIP
    """

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
        dataset: Dataset | None = None,
        dataloader: DataLoader | None = None,
        weights: Weights = None,
        ignore_index: int | None = -100,
        forward_fn: ForwardFn | None = None,
        batch_size: int | None = None,
        num_workers: int = 0,
        stochastic_data: Literal["error", "approximate"] = "error",
        every_n_epochs: int = 1,
        check_at_start: bool = True,
        tol: float = 0.0,
        stop_on_instability: bool = False,
        patience: int = 1,
        verbose: bool = False,
        quantiles: tuple[float, ...] = (0.01, 0.05, 0.5),
        log_histogram: bool = True,
        log_figure: bool = False,
        log_cost: bool = True,
        blame_size: int = 16,
        to_image: Any = None,
        save_margins: bool | str | Path | None = None,
        save_samples: bool | None = None,
        sample_history: bool = False,
        grid: dict[str, Any] | None = None,
        check_data: bool | dict[str, Any] = False,
        subset_size: int | None = None,
        confidence: float = 0.95,
        full_every_n_epochs: int | None = None,
        subset_seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs=every_n_epochs, check_at_start=check_at_start, verbose=verbose)
        validate_stability_options(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        check_data_settings(check_data)
        self.dataset, self.dataloader, self.weights, self.ignore_index = dataset, dataloader, weights, ignore_index
        self.forward_fn, self.batch_size, self.num_workers = forward_fn, batch_size, num_workers
        self.stochastic_data = stochastic_data
        self.tol, self.stop_on_instability, self.patience = float(tol), stop_on_instability, patience
        self.quantiles, self.log_histogram, self.log_figure = tuple(quantiles), log_histogram, log_figure
        self.log_cost, self.blame_size, self.to_image = log_cost, blame_size, to_image
        self.save_margins, self.save_samples, self.sample_history = save_margins, save_samples, sample_history
        self.grid, self.check_data = dict(grid or {}), check_data
        self.subset_size, self.confidence = subset_size, confidence
        self.full_every_n_epochs, self.subset_seed = full_every_n_epochs, subset_seed
        self.statistics = SampleStatistics(keep_history=bool(sample_history))
        self._build_parts()

    def _build_parts(self) -> None:
        """The parts, built from the options, and a fit's state, empty (at construction and when a fit starts)."""
        forward_fn = self.forward_fn or default_forward
        self.source = MarginSource(
            self.dataset, self.dataloader, self.batch_size, self.num_workers, forward_fn, self.ignore_index
        )
        self.outputs = RunOutputs(self.save_margins, self.save_samples, bool(self.check_data))
        pictures = BlamePictures(self.blame_size, self.to_image)
        self.publisher = CheckPublisher(self.log_histogram, self.log_figure, pictures, self.logger_only_prefixes)
        self.draw = SubsetDraw(self.subset_size or 0, self.full_every_n_epochs, self.subset_seed)
        self.history = InstabilityHistory()
        self.stop_rule = Patience(self.patience, self.stop_on_instability)
        self.cost = CheckCost(self.log_cost)
        parts = (self.source, self.draw, self.statistics, self.history, self.stop_rule, self.cost, self.outputs)
        self.runner = CheckRunner(*parts, self.publisher)
        self.resolved_weights: str | Tensor = "uniform"
        self.weights_source = "uniform"
        self.approximate = False
        self.data_report: theory.DataClusterReport | None = None
        self.last_report: theory.StabilityReport | None = None
        self.last_estimate: theory.SubsetEstimate | None = None
        self.last_pass: MarginPass | None = None
        self.last_cost: dict[str, float] = {}
        self._no_certificate = False  # a check found non-finite outputs (or nothing to certify) and stopped

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

    @property
    def instability_count(self) -> int:
        """The exact checks' instability events so far."""
        return self.history.count

    @property
    def consecutive_instabilities(self) -> int:
        """Consecutive instability events (exact and subset ones) up to the last check: the stop rule's count."""
        return self.stop_rule.consecutive

    @property
    def instability_epochs(self) -> list[int]:
        """The epochs of those events."""
        return list(self.history.epochs)

    @property
    def check_series(self) -> list[tuple[int, float, float, float, float, bool]]:
        """Every exact check's epoch, accuracy, three floors and event flag (the run-so-far picture)."""
        return list(self.history.checks)

    def metric_period(self, name: str) -> int | None:
        """``p`` if ``name`` is logged after exactly the epochs ``p − 1, 2p − 1, …`` (`SubsetDraw.metric_period`)."""
        return self.every_n_epochs if self.subset_size is None else self.draw.metric_period(name, self.every_n_epochs)

    def metric_schedule(self, name: str) -> str:
        return super().metric_schedule(name) if self.subset_size is None else self.draw.schedule(self.every_n_epochs)

    # ------------------------------------------------------------------ checkpoint state

    @property
    def state_key(self) -> str:
        # weights=None keys as "uniform", earlier versions' default, so their checkpoints still restore
        weights = self.weights if isinstance(self.weights, str) else "uniform" if self.weights is None else "tensor"
        return self._generate_state_key(every_n_epochs=self.every_n_epochs, tol=self.tol, weights=weights)

    def state_dict(self) -> dict[str, Any]:
        """The schedule's counters and every part's own ``state_dict``."""
        return {
            "checks_done": self.checks_done,
            "stop_reason": self.stop_reason,
            "last_checked_epoch": self.last_checked_epoch,
            "history": self.history.state_dict(),
            "stop_rule": self.stop_rule.state_dict(),
            "statistics": self.statistics.state_dict(),
            "draw": self.draw.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict`, or a checkpoint of release 0.1.0 (`upgraded_state` maps its keys)."""
        state = upgraded_state(state_dict)
        self.checks_done, self.stop_reason = int(state["checks_done"]), state["stop_reason"]
        self.last_checked_epoch = state["last_checked_epoch"]
        self.history.load_state_dict(state["history"])
        self.stop_rule.load_state_dict(state["stop_rule"])
        self.draw.load_state_dict(state["draw"])
        if state["statistics"] is not None:
            self.statistics.load_state_dict(state["statistics"])

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Build the parts from the options; choose this run's output directory and check it is writable."""
        if stage == "fit":
            refusal = same_kind_monitors(getattr(trainer, "callbacks", []), self)
            if refusal is not None:
                raise self.error(refusal)
        super().setup(trainer, pl_module, stage)
        if stage == "fit":
            self._build_parts()
            self.outputs.setup(trainer)

    def reset_for_new_fit(self, same_model: bool) -> None:
        """A later ``fit`` is a run of its own: `setup` builds the parts anew; the per-sample statistics follow the
        model, kept for the same LightningModule object, else started afresh (docs/guide.md, "A second fit")."""
        super().reset_for_new_fit(same_model)
        if not same_model:
            self.statistics = SampleStatistics(keep_history=bool(self.sample_history))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        weights = "sampler or uniform" if self.weights is None else self.weights
        ours: dict[str, Any] = {"stability/every_n_epochs": self.every_n_epochs, "stability/tol": self.tol}
        ours["stability/weights"] = weights if isinstance(weights, str) else "tensor"
        model = {
            k: v for k, v in dict(getattr(pl_module, "hparams_initial", {}) or {}).items() if not k.startswith("_")
        }
        self.publisher.declare_run(trainer, {**model, **ours})  # without LightningCLI's `_class_path`, `_instantiator`

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.publisher.start_run(trainer)
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
        samples_dir, report = self.outputs.samples_dir(trainer), self.last_report
        constants = {} if report is None else self._constants(report)
        history, why = self.history, self.stop_reason
        path = self.publisher.finish_run(trainer, self.statistics, samples_dir, report, constants, history, why)
        self.publisher.publish_page(trainer, why, self.patience, self.margins_dir(trainer))
        if path is not None:
            self.info(trainer, f"per-sample dynamics: {path}")

    def validate_setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Resolve the certified samples and their weights and inspect the first batch before training
        (`lightning_stability.callbacks.setup_checks.check_setup`): warn its notes once, raise its error."""
        fit_notes = [
            smoke_test_note(self.outputs.smoke_test and getattr(trainer, "fast_dev_run", 1)),
            schedule_never_checks(trainer.max_epochs, self.every_n_epochs, self.check_at_start),
        ]
        found = check_setup(trainer, pl_module, self.source, self.weights, self.stochastic_data, fit_notes)
        self.resolved_weights, self.weights_source, self.approximate = (
            found.weights,
            found.weights_source,
            found.approximate,
        )
        for note in found.notes:
            self.warn(trainer, note)
        if found.error is not None:
            raise self.error(found.error)

    # ------------------------------------------------------------------ the check: collect → assess → publish → decide

    def run_check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, in_epoch_end: bool) -> None:
        """One check (`lightning_stability.callbacks.check_runner.CheckRunner`); keep its results, warn its notes,
        decide (a check without certificate stops training as ``EarlyStopping(check_finite=True)`` does)."""
        request = CheckRequest(
            epoch=epoch,
            in_epoch_end=in_epoch_end,
            exact=self.subset_size is None or self.draw.is_full(epoch),
            settings=CheckSettings(self.tol, self.grid, self.quantiles, self.confidence, self.blame_size),
            weights=self.resolved_weights,
            weights_source=self.weights_source,
            user_loader=self.dataloader is not None,
            checks_done=self.checks_done,
            step=self.log_step(trainer),
            data_cluster=None if self.data_report is None else self.data_report.witness_indices,
            approximate=self.approximate,
            every_n_epochs=self.every_n_epochs,
            full_every_n_epochs=self.full_every_n_epochs,
        )
        outcome = self.runner.run(trainer, pl_module, request)
        result = outcome.result
        if result is None:
            self._no_certificate = True
            self.publisher.publish_stop(trainer, str(outcome.reason), request.step)
        else:
            self.finish_check(outcome.metrics, epoch)
            self.last_pass, self.last_cost = outcome.margin_pass, outcome.cost
            if result.exact:
                self.last_report = result.report
            else:
                self.last_estimate = result.estimate
        for note in outcome.notes:
            self.warn(trainer, note)
        if result is not None:
            self.info(trainer, outcome.line)
        self.decide_stop(trainer, outcome.stop, outcome.reason)

    def _constants(self, report: theory.StabilityReport) -> dict[str, Any]:
        return run_constants(report, self.every_n_epochs, self.weights_source, self.tol, self.approximate)
