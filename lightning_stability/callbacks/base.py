"""What every monitor does, in one place: schedule, counters, checkpoint state, stop decision, logging.

* `Monitor` — the base of every callback of the package: validated options, the check counter, a fresh start
  for every ``fit`` (`Monitor.start_fit`: the same monitor in a second ``trainer.fit`` checks that fit from its
  start), the checkpoint state (``state_dict`` / ``load_state_dict`` over the attributes a subclass lists in
  ``checkpoint_state``), training-data discovery, logging at or outside an epoch end, one-line summaries on rank
  zero, and the stop decision reduced across processes with ``trainer.strategy.reduce_boolean_decision``.
* `EpochMonitor` — a monitor that checks after every ``every_n_epochs``-th training epoch: it validates
  the user's setup when training starts (before the first epoch, never after a wasted one), optionally checks
  once before training, and after resuming from a checkpoint written before that epoch's check it runs the
  missed check, so a resumed run logs what an uninterrupted one does.

A subclass implements `EpochMonitor.run_check` (compute, then call `Monitor.finish_check`) and,
optionally, `EpochMonitor.validate_setup`.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

from torch.utils.data import Dataset

from ..distributions import CallbackBase, MisconfigurationError, rank_zero_info, rank_zero_warn
from ..scalars import check_log_step, log_check_scalars
from .metric_readers import check_metric_readers
from .training_data import TrainingData, find_training_data

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["EpochMonitor", "Monitor", "check_positive_int", "same_on_every_rank"]


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """``value`` if it is an ``int >= 1`` (not a bool), else a MisconfigurationError naming ``owner.name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise MisconfigurationError(f"{owner}: `{name}` must be a positive integer, got {value!r}.")
    return value


def same_on_every_rank(trainer: pl.Trainer, metrics: dict[str, float]) -> dict[str, float]:
    """Rank zero's ``metrics`` on every rank: each rank computed the same values from the same samples and weights;
    the broadcast makes them bit-identical, so every rank logs and decides alike."""
    if trainer.world_size == 1:
        return metrics
    return trainer.strategy.broadcast(metrics, src=0)


class Monitor(CallbackBase):
    """Base of the package's callbacks (see the module documentation).

    Args:
        verbose: print a one-line summary of every check (rank zero).
    """

    checkpoint_state: ClassVar[tuple[str, ...]] = ("checks_done", "stop_reason")
    """Attributes saved in checkpoints; subclasses extend the tuple."""

    logger_only_prefixes: ClassVar[tuple[str, ...]] = ()
    """Metrics sent straight to the loggers, in one call per check, instead of through ``pl_module.log``
    (which costs Lightning about a millisecond per value): detail nobody stops or checkpoints on. They are not in
    ``trainer.callback_metrics``; ``last_metrics`` holds them."""

    def __init__(self, *, verbose: bool = False) -> None:
        super().__init__()
        self.verbose = verbose
        self.last_metrics: dict[str, float] = {}
        self.checks_done = 0
        self.stop_reason: str | None = None
        self._fitted_module: weakref.ref[Any] | None = None  # the LightningModule of the latest fit (not owned)
        self._process = os.getpid()  # where the monitor was made: a spawned worker is another process

    @property
    def name(self) -> str:
        """The class name, used in every message."""
        return type(self).__name__

    # ------------------------------------------------------------------ checkpoint state

    def state_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.checkpoint_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for key in self.checkpoint_state:
            if key in state_dict:
                setattr(self, key, state_dict[key])

    # ------------------------------------------------------------------ one fit after another

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.start_fit(trainer, pl_module)

    def start_fit(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Called when a ``fit`` sets up (before a checkpoint's state is restored): a later fit of the same monitor
        starts afresh (`reset_for_new_fit`), keeping what follows the model when it trains the same
        LightningModule; in a worker process that ``ddp_spawn`` (or another start method) made, say once that the
        results stay there."""
        if self._fitted_module is not None:
            self.reset_for_new_fit(same_model=self._fitted_module() is pl_module)
        self._fitted_module = weakref.ref(pl_module)
        if os.getpid() != self._process and trainer.is_global_zero:
            self.warn(
                trainer,
                "this fit runs in worker processes the strategy started (ddp_spawn, ddp_fork or ddp_notebook), "
                "so the monitor object you hold is not updated: `last_report`, `checks_done`, `stop_reason` and "
                "the other results stay in the workers. Read them from the logs and files (the run directory, "
                'margin files, samples.csv) or a checkpoint\'s callback state, or train with `strategy="ddp"` '
                '(docs/guide.md, "Several processes").',
            )

    def __getstate__(self) -> dict[str, Any]:
        # a spawned worker gets a pickled copy: the weak reference to the last fit's module cannot travel
        return {**self.__dict__, "_fitted_module": None}

    def reset_for_new_fit(self, same_model: bool) -> None:
        """Forget the previous fit's checks (counters, stop reason, last values): a new fit has its own epochs,
        logger steps and stop decision. Subclasses reset their own state and call this."""
        self.checks_done = 0
        self.stop_reason = None
        self.last_metrics = {}

    # ------------------------------------------------------------------ pieces for subclasses

    def training_data(
        self, trainer: pl.Trainer, dataset: Dataset | None, alternatives: str = "`dataset=` (a map-style dataset)"
    ) -> TrainingData:
        """``dataset`` or the training loader's dataset (see `training_data.find_training_data`)."""
        return find_training_data(trainer, dataset, self.name, alternatives)

    def error(self, message: str) -> MisconfigurationError:
        """A `MisconfigurationError` whose message starts with the monitor's name."""
        return MisconfigurationError(f"{self.name}: {message}")

    def info(self, trainer: pl.Trainer | None, message: str) -> None:
        """Print ``[Name] message`` on rank zero when ``verbose``."""
        if self.verbose:
            rank_zero_info(trainer, f"[{self.name}] {message}")

    def warn(self, trainer: pl.Trainer | None, message: str) -> None:
        """Warn ``Name: message`` on rank zero."""
        rank_zero_warn(trainer, f"{self.name}: {message}")

    def log_metrics(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        metrics: dict[str, float],
        *,
        in_epoch_end: bool,
        epoch: int | None = None,
        step: int | None = None,
    ) -> None:
        """Send ``metrics`` to the loggers at ``step`` (the check's own step, `log_step`) in one call per logger;
        at an epoch end also put those not under ``logger_only_prefixes`` into ``trainer.callback_metrics``
        (`lightning_stability.scalars.log_check_scalars`)."""
        log_check_scalars(
            trainer,
            pl_module,
            metrics,
            step=step,
            epoch=epoch,
            in_epoch_end=in_epoch_end,
            logger_only=self.logger_only_prefixes,
        )

    def same_on_every_rank(self, trainer: pl.Trainer, metrics: dict[str, float]) -> dict[str, float]:
        """Rank zero's ``metrics`` on every rank (`same_on_every_rank`)."""
        return same_on_every_rank(trainer, metrics)

    def finish_check(self, metrics: dict[str, float]) -> None:
        """Count a finished check and keep its metrics (``last_metrics``)."""
        self.checks_done += 1
        self.last_metrics = metrics

    def decide_stop(self, trainer: pl.Trainer, stop: bool, reason: str | None) -> bool:
        """Stop training if any process asks to (``reduce_boolean_decision``); ``reason`` is kept and printed."""
        if stop:
            self.stop_reason = reason
        should_stop = bool(trainer.strategy.reduce_boolean_decision(stop, all=False))
        if should_stop and not trainer.should_stop:
            trainer.should_stop = True
            rank_zero_info(trainer, f"[{self.name}] stopping training: {self.stop_reason}")
        return should_stop


class EpochMonitor(Monitor):
    """A `Monitor` that checks after every ``every_n_epochs``-th training epoch (see the module doc).

    Args:
        every_n_epochs: check after every n-th training epoch (epochs ``n − 1, 2n − 1, …``).
        check_at_start: also check once when training starts, before the first step.
        verbose: print a one-line summary of every check (rank zero).
    """

    checkpoint_state: ClassVar[tuple[str, ...]] = (*Monitor.checkpoint_state, "last_checked_epoch")
    metric_prefixes: ClassVar[tuple[str, ...]] = ()
    """The prefixes of the names this monitor logs (EarlyStopping/ModelCheckpoint on them are checked at fit start)."""

    def __init__(self, *, every_n_epochs: int = 1, check_at_start: bool = False, verbose: bool = False) -> None:
        super().__init__(verbose=verbose)
        self.every_n_epochs = check_positive_int(type(self).__name__, "every_n_epochs", every_n_epochs)
        self.check_at_start = bool(check_at_start)
        self.last_checked_epoch: int | None = None

    def reset_for_new_fit(self, same_model: bool) -> None:
        super().reset_for_new_fit(same_model)
        self.last_checked_epoch = None

    def is_check_epoch(self, epoch: int) -> bool:
        """Whether the schedule checks after ``epoch``."""
        return (epoch + 1) % self.every_n_epochs == 0

    def _due(self, epoch: int) -> bool:
        checked = -1 if self.last_checked_epoch is None else self.last_checked_epoch  # (0 is a checked epoch)
        return self.is_check_epoch(epoch) and checked < epoch

    def validate_setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Check the user's setup before the first epoch (on one batch where needed); raise with the fix."""

    def run_check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, in_epoch_end: bool) -> None:
        """Compute, log and decide; ``epoch = −1`` is the check before training."""
        raise NotImplementedError(f"{self.name} must implement run_check")

    def log_step(self, trainer: pl.Trainer) -> int:
        """The logger step of a check, whatever its epoch (see `lightning_stability.scalars.check_log_step`)."""
        return check_log_step(trainer)

    def finish_check(self, metrics: dict[str, float], epoch: int | None = None) -> None:
        """Count a finished check of ``epoch`` and keep its metrics."""
        super().finish_check(metrics)
        self.last_checked_epoch = epoch

    def metric_period(self, name: str) -> int | None:
        """``p`` if the metric ``name`` is logged after exactly the epochs ``p − 1, 2p − 1, …`` (``None`` if it
        is not logged on such a schedule): what EarlyStopping and ModelCheckpoint are aligned with."""
        return self.every_n_epochs

    def metric_schedule(self, name: str) -> str:
        """In words, when the metric ``name`` is logged (for error messages)."""
        return f"after every {self.every_n_epochs} epoch(s)"

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        check_metric_readers(trainer, self)
        self.validate_setup(trainer, pl_module)
        finished_epoch = trainer.current_epoch - 1
        if finished_epoch >= 0:
            # resumed from a checkpoint written before this monitor's check of that epoch (e.g. at validation
            # end): the weights are those the check saw in the uninterrupted run, so run it now
            if self._due(finished_epoch):
                self.run_check(trainer, pl_module, finished_epoch, in_epoch_end=False)
        elif self.check_at_start and self.checks_done == 0:
            self.run_check(trainer, pl_module, -1, in_epoch_end=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if self._due(epoch):
            self.run_check(trainer, pl_module, epoch, in_epoch_end=True)
