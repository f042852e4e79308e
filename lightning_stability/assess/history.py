"""A check compared with the previous one (docs/theory.md §8), and the instability history a monitor keeps.

`PreviousCheck` is what a check leaves for the next one of its kind: its loss and accuracy and, for an exact check,
its samples' indices and margins (for the flip masses). `compare_checks` is pure: from the previous check and this
check's loss, accuracy and margins it says whether this check is an *instability event* (the loss fell while the
accuracy fell by more than ``tol``), whether the loss rose, and the flip masses. `InstabilityHistory` is the state
across checks — the previous exact and subset checks, the event counts and epochs — with its own ``state_dict``,
held by the `StabilityMonitor`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .. import theory
from ..records import MarginPass

if TYPE_CHECKING:
    from .check import ExactCheck, SubsetCheck

__all__ = ["Comparison", "InstabilityHistory", "PreviousCheck", "compare_checks"]


@dataclass(frozen=True, eq=False)
class PreviousCheck:
    """The previous check of one kind, as the next check of that kind compares with it (§8).

    Attributes:
        loss, accuracy: its ``μ``-weighted loss and its accuracy (a subset check's: the estimates of §11).
        indices, margins: an exact check's certified sample indices and their margins, for the flip masses of the
            samples both checks certified; ``None`` for a subset check (both or neither).

    Checkpoints store it as a dict (`as_dict`, `from_dict`): ``{"indices", "margins", "loss", "accuracy"}`` for an
    exact check, ``{"loss", "accuracy"}`` for a subset one.
    """

    loss: float
    accuracy: float
    indices: Tensor | None = None
    margins: Tensor | None = None

    def __post_init__(self) -> None:
        if (self.indices is None) != (self.margins is None):
            raise ValueError("a previous check has both `indices` and `margins` (exact check) or neither (subset).")

    @classmethod
    def of_pass(cls, margin_pass: MarginPass, loss: float, accuracy: float) -> PreviousCheck:
        """An exact check of ``margin_pass``, with copies of its indices and margins (the pass may be reused)."""
        return cls(loss, accuracy, margin_pass.indices.clone(), margin_pass.margins.clone())

    def as_dict(self) -> dict[str, Any]:
        """The checkpoint format: ``{"indices", "margins", "loss", "accuracy"}`` or ``{"loss", "accuracy"}``."""
        if self.indices is None:
            return {"loss": self.loss, "accuracy": self.accuracy}
        return {"indices": self.indices, "margins": self.margins, "loss": self.loss, "accuracy": self.accuracy}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> PreviousCheck:
        """The inverse of `as_dict` (``indices`` and ``margins`` absent: a subset check)."""
        return cls(state["loss"], state["accuracy"], state.get("indices"), state.get("margins"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PreviousCheck):
            return NotImplemented
        return (self.loss, self.accuracy) == (other.loss, other.accuracy) and all(
            a is b or (a is not None and b is not None and torch.equal(a, b))
            for a, b in ((self.indices, other.indices), (self.margins, other.margins))
        )


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
    previous: PreviousCheck | None,
    loss: float,
    accuracy: float,
    tol: float,
    margin_pass: MarginPass | None = None,
    weights: Tensor | None = None,
) -> Comparison:
    """Compare ``(loss, accuracy)`` with ``previous`` (§8: `lightning_stability.theory.instability_event`,
    `lightning_stability.theory.loss_rose`); with ``margin_pass`` and a previous exact check, the flip masses
    (`lightning_stability.theory.flip_masses`, ``weights`` as ``μ``) of the samples both checks certified."""
    if previous is None:
        return Comparison()
    forgotten = learned = math.nan
    changed = False
    if margin_pass is not None and previous.indices is not None and previous.margins is not None:
        if torch.equal(previous.indices, margin_pass.indices):
            forgotten, learned = theory.flip_masses(previous.margins, margin_pass.margins, weights)
        else:
            changed = True
    return Comparison(
        event=theory.instability_event(previous.loss, previous.accuracy, loss, accuracy, tol),
        loss_rose=theory.loss_rose(previous.loss, loss),
        flip_forgotten=forgotten,
        flip_learned=learned,
        samples_changed=changed,
        previous_loss=previous.loss,
        previous_accuracy=previous.accuracy,
    )


def _state(previous: PreviousCheck | None) -> dict[str, Any] | None:
    return None if previous is None else previous.as_dict()


def _check(state: Mapping[str, Any] | None) -> PreviousCheck | None:
    return None if state is None else PreviousCheck.from_dict(state)


class InstabilityHistory:
    """The instability events so far and the previous check of each kind (exact, subset).

    Attributes:
        count: exact instability events so far; ``epochs``: their epochs.
        previous: the previous exact check (with its ``indices`` and ``margins``), or ``None``.
        subset_count, subset_previous: the same for the statistical mode's subset checks (loss and accuracy only).
        checks: every exact check as ``(epoch, accuracy, loss floor, Theorem A floor, Theorem B floor, event)``,
            what the run-so-far picture draws.
    """

    def __init__(self) -> None:
        self.count = 0
        self.epochs: list[int] = []
        self.previous: PreviousCheck | None = None
        self.subset_count = 0
        self.subset_previous: PreviousCheck | None = None
        self.checks: list[tuple[int, float, float, float, float, bool]] = []

    def record_exact(self, result: ExactCheck) -> None:
        """Take in an exact check: add it (epoch, accuracy, its floors, event) to `checks`, count its event and
        keep it as the previous exact check (copies of its pass's indices and margins)."""
        event = result.comparison.event
        self.checks.append((result.epoch, result.accuracy, *result.floors, event))
        if event:
            self.epochs.append(result.epoch)
            self.count += 1
        self.previous = result.as_previous()

    def record_subset(self, result: SubsetCheck) -> None:
        """Take in a subset check: count its event, keep it as the previous subset check."""
        self.subset_previous = result.as_previous()
        self.subset_count += int(result.comparison.event)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint state; ``previous`` and ``subset_previous`` in `PreviousCheck.as_dict`'s format."""
        return {
            "instability_count": self.count,
            "instability_epochs": list(self.epochs),
            "previous": _state(self.previous),
            "subset_previous": _state(self.subset_previous),
            "subset_instability_count": self.subset_count,
            "checks": list(self.checks),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["instability_count"])
        self.epochs = list(state["instability_epochs"])
        self.previous = _check(state["previous"])
        self.subset_previous = _check(state.get("subset_previous"))
        self.subset_count = int(state.get("subset_instability_count", 0))
        self.checks = [tuple(check) for check in state.get("checks", [])]
