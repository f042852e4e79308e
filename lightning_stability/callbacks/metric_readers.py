"""Lightning's EarlyStopping and ModelCheckpoint must read a monitor's metric right after the check that wrote it.

Both act on whatever value ``trainer.callback_metrics`` holds when their hook runs. An `EpochMonitor` writes its
values at the end of the training epochs it checks, so a reader that runs at any other moment acts on an older
check's value (a checkpoint ranked by the score of an epoch it does not hold, a patience that counts unchecked
epochs), or fails with "metric not available" where no check has run yet. At fit start, `check_metric_readers`
finds every EarlyStopping and ModelCheckpoint (of either Lightning distribution) whose ``monitor`` is one of the
monitor's metrics and refuses one that reads a metric sent to the loggers only (``logger_only_prefixes``), and

* **aligns a ModelCheckpoint** that saves per epoch but at validation end (Lightning's default when validation
  does not run exactly once per epoch) or after epochs the monitor does not check: it then saves at
  training-epoch end, after every ``lcm(its every_n_epochs, the monitor's)``-th epoch, and a warning says so
  once — so ``ModelCheckpoint(monitor="stability/theorem_a/floor", mode="max")`` works as users write it;
* **refuses**, naming the fix, a ModelCheckpoint that saves every ``n`` training steps or on a timer, and an
  EarlyStopping that runs at validation end (``check_on_train_epoch_end`` false), is listed before the monitor
  in ``callbacks=[...]`` (at epoch end it would run first), or runs after every epoch while the monitor checks
  every ``n > 1`` epochs (its patience would count unchecked epochs). Changing an EarlyStopping would change
  what its patience means, so it is never adjusted.

The recipes are in docs/guide.md ("Stopping and checkpointing on the monitor's metrics").
"""

from __future__ import annotations

import importlib
import math
from typing import TYPE_CHECKING, Any

from ..distributions import MisconfigurationError, distribution_of, lightning_classes, rank_zero_warn

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from .base import EpochMonitor

__all__ = ["check_metric_readers"]

RECIPES = 'docs/guide.md, "Stopping and checkpointing on the monitor\'s metrics"'


def check_metric_readers(trainer: pl.Trainer, monitor: EpochMonitor) -> None:
    """Align every ModelCheckpoint of ``trainer`` that ranks by one of ``monitor``'s metrics to the monitor's
    schedule, and raise a `MisconfigurationError` for an EarlyStopping or ModelCheckpoint that would read such a
    metric when it does not hold the value of a check just made (see the module doc).

    Call after the Trainer's ``setup`` (EarlyStopping resolves ``check_on_train_epoch_end`` there)."""
    callbacks = list(getattr(trainer, "callbacks", []))  # set by the Trainer's callback connector (untyped)
    position = next(index for index, callback in enumerate(callbacks) if callback is monitor)
    for index, callback in enumerate(callbacks):
        metric = getattr(callback, "monitor", None)
        if not isinstance(metric, str) or not monitor.owns_metric(metric):
            continue
        described = f"{type(callback).__name__}(monitor={metric!r})"
        if metric.startswith(monitor.logger_only_prefixes):
            raise MisconfigurationError(
                f"{monitor.name}: {described} reads a metric that {monitor.name} sends to the loggers only, never "
                f"to trainer.callback_metrics (where EarlyStopping and ModelCheckpoint look); monitor one of its "
                f"`stability/…` values, or read this one in Python from `{monitor.name}.last_metrics` (recipes: "
                f"{RECIPES})."
            )
        every = monitor.metric_period(metric)
        if every is None:
            raise MisconfigurationError(
                f"{monitor.name}: {described} reads a metric that {monitor.name} does not log after a fixed "
                f"number of epochs with these settings ({monitor.metric_schedule(metric)}), so it would act on "
                f"values of other epochs; monitor a metric of the exact checks, or schedule them (recipes: "
                f"{RECIPES})."
            )
        if isinstance(callback, lightning_classes("callbacks", "EarlyStopping")):
            problem = _early_stopping_problem(callback, index < position, every, monitor.name)
        elif isinstance(callback, lightning_classes("callbacks", "ModelCheckpoint")):
            problem = _checkpoint_problem(callback, every, monitor.name)
            if problem is None:
                _align_checkpoint(callback, trainer, every, f"{monitor.name}: {described}")
        else:
            continue
        if problem is not None:
            raise MisconfigurationError(f"{monitor.name}: {described} {problem} (recipes: {RECIPES}).")


def _attribute(package: str, module: str, name: str) -> Any:
    return getattr(importlib.import_module(f"{package}.{module}"), name)


def _early_stopping_problem(callback: Any, listed_first: bool, every: int, name: str) -> str | None:
    if not callback._check_on_train_epoch_end:
        return (
            f"runs at validation end, before {name}'s check of that epoch, so it would act on the previous check's "
            "value; pass `check_on_train_epoch_end=True`"
        )
    if listed_first:
        return (
            f"is listed before {name} in `callbacks=[...]`, so at epoch end it runs before the check and acts on "
            f"the previous check's value; list it after {name}"
        )
    if every > 1:
        return (
            f"runs after every epoch but {name} checks every {every} epochs, so its patience would count "
            f"unchecked epochs (or it fails where no check has run yet); use {name}(every_n_epochs=1) or the "
            f"monitor's own stop (`stop_on_instability=True, patience=...`)"
        )
    return None


def _checkpoint_problem(callback: Any, every: int, name: str) -> str | None:
    if callback._every_n_train_steps or callback._train_time_interval is not None:
        return (
            f"saves every n training steps or on a timer, between {name}'s checks, so it would rank a "
            f"checkpoint by an older check's value; save per epoch (`every_n_epochs={every}`)"
        )
    return None


def _align_checkpoint(callback: Any, trainer: pl.Trainer, every: int, described: str) -> None:
    """Make a per-epoch ModelCheckpoint save at training-epoch end after checked epochs only; warn what changed."""
    changes = []
    if not _saves_at_train_epoch_end(callback, trainer):
        callback._save_on_train_epoch_end = True
        changes.append("at training-epoch end instead of validation end")
    if callback._every_n_epochs and callback._every_n_epochs % every:
        asked, callback._every_n_epochs = callback._every_n_epochs, math.lcm(callback._every_n_epochs, every)
        changes.append(f"every {callback._every_n_epochs} epochs instead of every {asked}")
    if changes:
        rank_zero_warn(
            trainer,
            f"{described} now saves {' and '.join(changes)}, after the checks of the monitor (every {every} "
            f"epoch(s)), so that each checkpoint is ranked by the check of its own weights. Pass these settings "
            f"yourself to silence this warning (recipes: {RECIPES}).",
        )


def _saves_at_train_epoch_end(callback: Any, trainer: pl.Trainer) -> bool:
    """ModelCheckpoint's own rule (``_should_save_on_train_epoch_end``), decided before the validation dataloaders
    are loaded: saves at train-epoch end if asked to, or if validation cannot run (no ``validation_step`` or
    ``limit_val_batches=0``), or if it runs exactly once per epoch."""
    if callback._save_on_train_epoch_end is not None:
        return bool(callback._save_on_train_epoch_end)
    module = trainer.lightning_module
    is_overridden = _attribute(distribution_of(module), "utilities.model_helpers", "is_overridden")
    if not is_overridden("validation_step", module) or trainer.limit_val_batches == 0:
        return True
    return (
        getattr(trainer, "_val_check_time_interval", None) is None
        and trainer.check_val_every_n_epoch == 1
        and trainer.val_check_interval == 1.0
    )
