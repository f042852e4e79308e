"""Lightning's EarlyStopping and ModelCheckpoint must read a monitor's metric right after the check that wrote it.

Both act on whatever value ``trainer.callback_metrics`` holds when their hook runs. An `EpochMonitor` writes its
values at the end of the training epochs it checks, so a reader that runs at any other moment acts on an older
check's value (a checkpoint ranked by the score of an epoch it does not hold, a patience that counts unchecked
epochs), or fails with "metric not available" where no check has run yet. At fit start, `check_metric_readers`
finds every EarlyStopping and ModelCheckpoint (of either Lightning distribution) whose ``monitor`` is one of the
monitor's metrics (`metric_owner`: the monitor with the longest prefix of the name), refuses one that reads a
metric sent to the loggers only (``logger_only_prefixes``), and

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

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..distributions import MisconfigurationError, lightning_classes, rank_zero_warn
from ..lightning_internals import (
    align_checkpoint_schedule,
    checkpoint_every_n_epochs,
    checkpoint_every_n_train_steps,
    checkpoint_saves_at_train_epoch_end,
    checkpoint_train_time_interval,
    early_stopping_checks_on_train_epoch_end,
)

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["MetricSource", "PrefixOwner", "check_metric_readers", "metric_owner"]

RECIPES = 'docs/guide.md, "Stopping and checkpointing on the monitor\'s metrics"'


class PrefixOwner(Protocol):
    """Whatever declares the prefixes of the metric names it logs: a monitor, or a monitor class (`metric_owner`)."""

    @property
    def metric_prefixes(self) -> tuple[str, ...]:
        """The prefixes of the names the monitor logs (each monitor class declares its own)."""
        ...


Owner = TypeVar("Owner", bound=PrefixOwner)


def metric_owner(name: str, monitors: Iterable[Owner]) -> Owner | None:
    """The monitor of ``monitors`` that logs the metric ``name``: the one whose ``metric_prefixes`` holds the
    longest prefix of ``name``; ``None`` if no monitor's prefix starts it.

    The package's monitors share prefixes only by nesting — the StabilityMonitor's ``stability/`` holds the
    SharpnessMonitor's ``stability/sharpness/``, the ParametrizationMonitor's ``stability/parametrization/`` and
    the GradientFlowMonitor's ``stability/gradient_flow/`` — so the longest prefix decides, whatever the order.
    Two monitors tie only if they declare the same prefix (two monitors of one class); the first in ``monitors``
    then owns the name.

    Example:

        >>> from types import SimpleNamespace
        >>> stability = SimpleNamespace(metric_prefixes=("stability/", "stability_events/"))
        >>> sharpness = SimpleNamespace(metric_prefixes=("stability/sharpness/",))
        >>> metric_owner("stability/sharpness/lambda_max", [stability, sharpness]) is sharpness
        True
        >>> metric_owner("stability/accuracy", [stability, sharpness]) is stability
        True
        >>> metric_owner("val_loss", [stability, sharpness]) is None
        True
    """
    owner, longest = None, -1
    for monitor in monitors:
        for prefix in monitor.metric_prefixes:
            if len(prefix) > longest and name.startswith(prefix):
                owner, longest = monitor, len(prefix)
    return owner


def _package_monitor_classes() -> list[PrefixOwner]:
    """The package's monitor classes that declare ``metric_prefixes``: they stand in for monitors absent from the
    Trainer, so that a name under an absent monitor's prefix (``stability/sharpness/…`` without a
    SharpnessMonitor) is nobody's here rather than the StabilityMonitor's. Importing any module of
    `lightning_stability.callbacks` imports them all (the package's ``__init__``)."""
    from .base import Monitor  # here, not at the top: `base` imports this module

    found: list[Any] = []
    pending: list[type] = [Monitor]
    while pending:
        cls = pending.pop(0)
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("lightning_stability.") and vars(cls).get("metric_prefixes") and cls not in found:
            found.append(cls)
    return found


class MetricSource(PrefixOwner, Protocol):
    """What `check_metric_readers` asks of a monitor (an `EpochMonitor` is one)."""

    @property
    def name(self) -> str:
        """The monitor's name in messages."""
        ...

    @property
    def logger_only_prefixes(self) -> tuple[str, ...]:
        """The prefixes of the metrics sent to the loggers only, never to ``trainer.callback_metrics``."""
        ...

    def metric_period(self, name: str) -> int | None:
        """``p`` if ``name`` is logged after exactly the epochs ``p − 1, 2p − 1, …``, else ``None``."""
        ...

    def metric_schedule(self, name: str) -> str:
        """In words, when ``name`` is logged."""
        ...


def check_metric_readers(trainer: pl.Trainer, monitor: MetricSource) -> None:
    """Align every ModelCheckpoint of ``trainer`` that ranks by one of ``monitor``'s metrics to the monitor's
    schedule, and raise a `MisconfigurationError` for an EarlyStopping or ModelCheckpoint that would read such a
    metric when it does not hold the value of a check just made (see the module doc).

    ``monitor``'s metrics are the names it owns (`metric_owner`) among the Trainer's callbacks that declare
    ``metric_prefixes``, ``monitor`` first (it owns the names of a prefix it shares with another monitor of its
    class), and the package's monitor classes in place of the monitors the Trainer lacks.

    Call from ``on_train_start``: EarlyStopping resolves ``check_on_train_epoch_end`` in its ``setup``, and
    ModelCheckpoint's rule of where it saves needs the validation dataloaders loaded (see
    `lightning_stability.lightning_internals.checkpoint_saves_at_train_epoch_end`)."""
    callbacks = list(getattr(trainer, "callbacks", []))  # set by the Trainer's callback connector (untyped)
    position = next(index for index, callback in enumerate(callbacks) if callback is monitor)
    others = [callback for callback in callbacks if callback is not monitor and hasattr(callback, "metric_prefixes")]
    monitors: list[PrefixOwner] = [monitor, *others, *_package_monitor_classes()]
    for index, callback in enumerate(callbacks):
        metric = getattr(callback, "monitor", None)
        if not isinstance(metric, str) or metric_owner(metric, monitors) is not monitor:
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


def _early_stopping_problem(callback: Any, listed_first: bool, every: int, name: str) -> str | None:
    if not early_stopping_checks_on_train_epoch_end(callback):
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
    if checkpoint_every_n_train_steps(callback) or checkpoint_train_time_interval(callback) is not None:
        return (
            f"saves every n training steps or on a timer, between {name}'s checks, so it would rank a "
            f"checkpoint by an older check's value; save per epoch (`every_n_epochs={every}`)"
        )
    return None


def _align_checkpoint(callback: Any, trainer: pl.Trainer, every: int, described: str) -> None:
    """Make a per-epoch ModelCheckpoint save at training-epoch end after checked epochs only; warn what changed."""
    changes = []
    if not checkpoint_saves_at_train_epoch_end(callback, trainer):
        align_checkpoint_schedule(callback, save_on_train_epoch_end=True)
        changes.append("at training-epoch end instead of validation end")
    asked = checkpoint_every_n_epochs(callback)
    if asked and asked % every:
        align_checkpoint_schedule(callback, every_n_epochs=math.lcm(asked, every))
        changes.append(f"every {checkpoint_every_n_epochs(callback)} epochs instead of every {asked}")
    if changes:
        rank_zero_warn(
            trainer,
            f"{described} now saves {' and '.join(changes)}, after the checks of the monitor (every {every} "
            f"epoch(s)), so that each checkpoint is ranked by the check of its own weights. Pass these settings "
            f"yourself to silence this warning (recipes: {RECIPES}).",
        )
