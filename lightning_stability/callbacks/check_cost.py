"""What a check costs the user, logged under ``stability_cost/`` (issue 15; docs/cost.md)."""

from __future__ import annotations

import time

__all__ = ["CheckCost"]


class CheckCost:
    """Wall-clock seconds of a check's margin pass and theory step, and their sum over the training time of the
    epoch just ended (``check_to_epoch``: what a check after every epoch adds to it).

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

    def metrics(self, pass_seconds: float, theory_seconds: float) -> dict[str, float]:
        """``stability_cost/*`` of the check that just ran; the epoch's share only after a training epoch."""
        if not self.enabled:
            return {}
        cost = {"stability_cost/pass_seconds": pass_seconds, "stability_cost/theory_seconds": theory_seconds}
        if self.epoch_started is not None:
            epoch_seconds = self.clock() - self.epoch_started - pass_seconds - theory_seconds
            if epoch_seconds > 0:
                cost["stability_cost/check_to_epoch"] = (pass_seconds + theory_seconds) / epoch_seconds
        self.epoch_started = None
        return cost
