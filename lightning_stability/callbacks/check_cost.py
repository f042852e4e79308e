"""What a check costs the user, logged under ``stability_cost/`` after everything else of the check (docs/cost.md)."""

from __future__ import annotations

import time

__all__ = ["CheckCost"]


class CheckCost:
    """Wall-clock seconds of a check — its margin pass, its theory step (certificate, comparison, per-sample
    statistics, blame sets), its publishing (every logger call, figure and file) and their total — and the total
    over the training time of the epoch just ended (``check_to_epoch``: what a check after every epoch adds to it).

    Args:
        enabled: ``False`` makes `metrics` return nothing (``StabilityMonitor(log_cost=False)``).
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = bool(enabled)
        self.epoch_started: float | None = None

    @staticmethod
    def clock() -> float:
        """Seconds (``time.perf_counter``)."""
        return time.perf_counter()

    def start_epoch(self) -> None:
        """Mark the start of a training epoch (``on_train_epoch_start``)."""
        self.epoch_started = self.clock()

    def metrics(self, started: float, passed: float, assessed: float, finished: float) -> dict[str, float]:
        """``stability_cost/*`` of the check that ran from ``started`` (its pass until ``passed``, its theory step
        until ``assessed``, publishing until ``finished``); the epoch's share only after a training epoch."""
        if not self.enabled:
            return {}
        total = finished - started
        cost = {
            "stability_cost/pass_seconds": passed - started,
            "stability_cost/theory_seconds": assessed - passed,
            "stability_cost/publish_seconds": finished - assessed,
            "stability_cost/total_seconds": total,
        }
        if self.epoch_started is not None:
            epoch_seconds = started - self.epoch_started
            if epoch_seconds > 0:
                cost["stability_cost/check_to_epoch"] = total / epoch_seconds
        self.epoch_started = None
        return cost
