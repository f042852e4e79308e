"""The `StabilityMonitor`'s comparison of a check with the previous one (docs/theory.md §8): instability events,
the loss-rose flag, the flip masses, the counters kept in checkpoints, and the stop rule."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .. import theory

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from ..records import MarginPass
    from .stability import StabilityMonitor

__all__ = ["compare_with_previous"]


def compare_with_previous(
    monitor: StabilityMonitor,
    trainer: pl.Trainer,
    metrics: dict[str, float],
    margin_pass: MarginPass,
    weights: Tensor | None,
) -> tuple[bool, str | None]:
    """Compare this check's ``stability/loss`` and ``stability/accuracy`` in ``metrics`` with ``monitor.previous``
    (§8), add ``instability``, ``instability_count``, ``stable_checks``, ``loss_rose`` and the flip masses to
    ``metrics``, update the monitor's counters and ``previous``; returns ``(stop, reason)`` for `decide_stop`."""
    loss, accuracy = metrics["stability/loss"], metrics["stability/accuracy"]
    previous = monitor.previous
    event = rose = False
    forgotten = learned = math.nan
    message = None
    if previous is not None:
        event = theory.instability_event(previous["loss"], previous["accuracy"], loss, accuracy, monitor.tol)
        rose = theory.loss_rose(previous["loss"], loss)
        if torch.equal(previous["indices"], margin_pass.indices):
            forgotten, learned = theory.flip_masses(previous["margins"], margin_pass.margins, weights)
        else:
            monitor.warn(trainer, "the certified samples changed since the previous check; flip masses skipped.")
    if event:
        monitor.instability_epochs.append(int(metrics["stability/check_epoch"]))
        monitor.instability_count += 1
        monitor.consecutive_instabilities += 1
    else:
        monitor.consecutive_instabilities = 0
    metrics["stability/instability"] = float(event)
    metrics["stability/instability_count"] = float(monitor.instability_count)
    # every check is an event or not; this one is not yet in checks_done (finish_check counts it)
    metrics["stability/stable_checks"] = float(monitor.checks_done + 1 - monitor.instability_count)
    metrics["stability/loss_rose"] = float(rose)
    if not math.isnan(forgotten):
        metrics["stability/flip_forgotten"] = forgotten
        metrics["stability/flip_learned"] = learned
    stop = monitor.stop_on_instability and monitor.consecutive_instabilities >= monitor.patience
    if event and previous is not None:
        message = (
            f"instability at epoch {int(metrics['stability/check_epoch'])}: the training loss fell "
            f"({previous['loss']:.6g} -> {loss:.6g}) while the training accuracy fell "
            f"({previous['accuracy']:.6g} -> {accuracy:.6g}, tol {monitor.tol:g}); "
            f"{monitor.consecutive_instabilities} consecutive event(s), patience {monitor.patience}"
        )
        monitor.warn(trainer, message)
    monitor.previous = {
        "indices": margin_pass.indices.clone(),
        "margins": margin_pass.margins.clone(),
        "loss": loss,
        "accuracy": accuracy,
    }
    return stop, message
