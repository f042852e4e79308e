"""The `StabilityMonitor`'s checkpoint state, as the attributes the base's ``checkpoint_state`` names.

The state itself lives in the parts that own it — the instability history, the stop rule, the per-sample
statistics, the subset draw — each with its own ``state_dict``; these properties only name it for checkpoints
(the keys of earlier versions, so their checkpoints still load) and for readers.
"""

from __future__ import annotations

from typing import Any

from ..assess import InstabilityHistory, Patience
from ..dynamics.samples import SampleStatistics
from .subset_draw import SubsetDraw

__all__ = ["STABILITY_STATE", "StabilityState"]

STABILITY_STATE = (
    "instability_count",
    "consecutive_instabilities",
    "instability_epochs",
    "previous",
    "sample_state",
    "subset_state",
    "check_series",
)


class StabilityState:
    """Checkpoint attributes over the parts ``history``, ``stop_rule``, ``statistics`` and ``draw``."""

    history: InstabilityHistory
    stop_rule: Patience
    statistics: SampleStatistics
    draw: SubsetDraw

    @property
    def instability_count(self) -> int:
        """The exact checks' instability events so far."""
        return self.history.count

    @instability_count.setter
    def instability_count(self, value: int) -> None:
        self.history.count = value

    @property
    def instability_epochs(self) -> list[int]:
        """The epochs of those events."""
        return self.history.epochs

    @instability_epochs.setter
    def instability_epochs(self, value: list[int]) -> None:
        self.history.epochs = value

    @property
    def consecutive_instabilities(self) -> int:
        """Consecutive instability events (exact and subset ones) up to the last check."""
        return self.stop_rule.consecutive

    @consecutive_instabilities.setter
    def consecutive_instabilities(self, value: int) -> None:
        self.stop_rule.consecutive = value

    @property
    def previous(self) -> dict[str, Any] | None:
        """The previous exact check's ``indices``, ``margins``, ``loss`` and ``accuracy``."""
        return self.history.previous

    @previous.setter
    def previous(self, value: dict[str, Any] | None) -> None:
        self.history.previous = value

    @property
    def check_series(self) -> list[tuple[int, float, float, float, float, bool]]:
        """Every exact check's epoch, accuracy, three floors and event flag (the run-so-far picture)."""
        return self.history.checks

    @check_series.setter
    def check_series(self, value: list[tuple[int, float, float, float, float, bool]]) -> None:
        self.history.checks = [tuple(check) for check in value]  # type: ignore[misc]

    @property
    def sample_state(self) -> dict[str, Any]:
        """The per-sample statistics (`lightning_stability.dynamics.samples.SampleStatistics.state_dict`)."""
        return self.statistics.state_dict()

    @sample_state.setter
    def sample_state(self, state: dict[str, Any]) -> None:
        self.statistics.load_state_dict(state)

    @property
    def subset_state(self) -> dict[str, Any] | None:
        """The statistical mode's drawn subset and its previous check (``None`` before the draw)."""
        if self.draw.indices is None:
            return None
        return {
            **self.draw.state_dict(),
            "previous": self.history.subset_previous,
            "instability_count": self.history.subset_count,
        }

    @subset_state.setter
    def subset_state(self, state: dict[str, Any] | None) -> None:
        if state is None:
            self.draw.load_state_dict({"indices": None, "counts": None})
            self.history.subset_previous, self.history.subset_count = None, 0
            return
        self.draw.load_state_dict(state)
        self.history.subset_previous, self.history.subset_count = state["previous"], state["instability_count"]
