"""A check compared with the previous one (docs/theory.md §8), and the instability history a monitor keeps.

`compare_checks` is pure: from the previous check's state and this check's loss, accuracy and margins it says
whether this check is an *instability event* (the loss fell while the accuracy fell by more than ``tol``), whether
the loss rose, and the flip masses. `InstabilityHistory` is the state across checks — the previous exact and
subset checks, the event counts and epochs — with its own ``state_dict``, held by the `StabilityMonitor`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import theory
from ..records import MarginPass

__all__ = ["Comparison", "InstabilityHistory", "compare_checks"]


@dataclass(frozen=True)
class Comparison:
    """This check against the previous one of its kind (all false/NaN for the first check).

    Attributes:
        event: the loss fell while the accuracy fell by more than ``tol`` (§8).
        loss_rose: the loss rose, so the previous check's floors no longer apply.
        flip_forgotten, flip_learned: ``μ`` of the samples that went from correct to wrong and back (NaN when the
            samples changed or there is no previous exact check).
        samples_changed: the certified samples are not those of the previous check (flip masses skipped).
        previous_loss, previous_accuracy: the previous check's values (NaN for the first check).
    """

    event: bool = False
    loss_rose: bool = False
    flip_forgotten: float = math.nan
    flip_learned: float = math.nan
    samples_changed: bool = False
    previous_loss: float = math.nan
    previous_accuracy: float = math.nan


def compare_checks(
    previous: dict[str, Any] | None,
    loss: float,
    accuracy: float,
    tol: float,
    margin_pass: MarginPass | None = None,
    weights: Tensor | None = None,
) -> Comparison:
    """Compare ``(loss, accuracy)`` with ``previous`` (``{"loss", "accuracy"}`` and, for exact checks,
    ``{"indices", "margins"}``); with ``margin_pass`` the flip masses of the samples both checks certified."""
    if previous is None:
        return Comparison()
    forgotten = learned = math.nan
    changed = False
    if margin_pass is not None and "indices" in previous:
        if torch.equal(previous["indices"], margin_pass.indices):
            forgotten, learned = theory.flip_masses(previous["margins"], margin_pass.margins, weights)
        else:
            changed = True
    return Comparison(
        event=theory.instability_event(previous["loss"], previous["accuracy"], loss, accuracy, tol),
        loss_rose=theory.loss_rose(previous["loss"], loss),
        flip_forgotten=forgotten,
        flip_learned=learned,
        samples_changed=changed,
        previous_loss=previous["loss"],
        previous_accuracy=previous["accuracy"],
    )


class InstabilityHistory:
    """The instability events so far and the previous check of each kind (exact, subset).

    Attributes:
        count: exact instability events so far; ``epochs``: their epochs.
        previous: the previous exact check (``indices``, ``margins``, ``loss``, ``accuracy``), or ``None``.
        subset_count, subset_previous: the same for the statistical mode's subset checks.
        checks: every exact check as ``(epoch, accuracy, loss floor, Theorem A floor, Theorem B floor, event)``,
            what the run-so-far picture draws.
    """

    def __init__(self) -> None:
        self.count = 0
        self.epochs: list[int] = []
        self.previous: dict[str, Any] | None = None
        self.subset_count = 0
        self.subset_previous: dict[str, float] | None = None
        self.checks: list[tuple[int, float, float, float, float, bool]] = []

    def record_exact(
        self,
        epoch: int,
        comparison: Comparison,
        margin_pass: MarginPass,
        loss: float,
        accuracy: float,
        floors: tuple[float, float, float] | None = None,
    ) -> None:
        """Take in an exact check: count its event, keep it as the previous exact check, and add it (with its
        ``floors``: loss floor, Theorem A, Theorem B) to `checks`."""
        if floors is not None:
            self.checks.append((epoch, accuracy, *floors, comparison.event))
        if comparison.event:
            self.epochs.append(epoch)
            self.count += 1
        self.previous = {
            "indices": margin_pass.indices.clone(),
            "margins": margin_pass.margins.clone(),
            "loss": loss,
            "accuracy": accuracy,
        }

    def record_subset(self, comparison: Comparison, loss: float, accuracy: float) -> None:
        """Take in a subset check: count its event, keep it as the previous subset check."""
        self.subset_previous = {"loss": loss, "accuracy": accuracy}
        self.subset_count += int(comparison.event)

    def state_dict(self) -> dict[str, Any]:
        return {
            "instability_count": self.count,
            "instability_epochs": list(self.epochs),
            "previous": self.previous,
            "subset_previous": self.subset_previous,
            "subset_instability_count": self.subset_count,
            "checks": list(self.checks),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["instability_count"])
        self.epochs = list(state["instability_epochs"])
        self.previous = state["previous"]
        self.subset_previous = state.get("subset_previous")
        self.subset_count = int(state.get("subset_instability_count", 0))
        self.checks = [tuple(check) for check in state.get("checks", [])]
