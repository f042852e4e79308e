"""The stop rule every monitor shares: stop after ``patience`` consecutive events (docs/design.md)."""

from __future__ import annotations

from typing import Any

__all__ = ["Patience"]


class Patience:
    """Counts consecutive events; `update` says when they reach ``patience`` (and stopping is asked for).

    Args:
        patience: the number of consecutive events that stop training (``>= 1``).
        stop: whether events stop training at all (``stop_on_instability``, ``stop_on_unstable``).
    """

    def __init__(self, patience: int, stop: bool) -> None:
        self.patience = patience
        self.stop = bool(stop)
        self.consecutive = 0

    def update(self, event: bool) -> bool:
        """Count this check's ``event`` (a check without one resets the count); ``True`` when training should
        stop: ``stop`` and ``consecutive >= patience``."""
        self.consecutive = self.consecutive + 1 if event else 0
        return self.stop and self.consecutive >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"consecutive": self.consecutive}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.consecutive = int(state["consecutive"])
