"""Per-sample training dynamics from the margin passes, and the blame sets of a check (docs/samples.md).

Every check of the `StabilityMonitor` computes, for each training sample ``k`` it covers, the margin
``δ_k = z_{k,y_k} − max_{j≠y_k} z_{k,j}``, the cross entropy ``ℓ_k`` (so the probability of the true class is
``p_k = exp(−ℓ_k)``) and the predicted class. `SampleStatistics` folds those vectors, check after check, into
``O(N)`` running statistics per sample (S1–S4 of docs/samples.md):

* ``aum`` — the mean margin over the checks that saw the sample (the Area Under the Margin, S1);
* ``confidence``, ``variability`` — mean and population standard deviation of ``p_k`` (dataset cartography, S2),
  by Welford's update ``n ← n + 1, d = p − m, m ← m + d/n, M₂ ← M₂ + d (p − m)``;
* ``correctness`` — the fraction of those checks with ``δ_k > 0``; ``forgetting_events`` — the number of
  transitions correct → wrong between consecutive checks that saw the sample; ``first_learned_check`` — the
  check from which the sample has been correct at every check since (S3);
* the last margin and predicted class.

Only the samples present in an update are touched, and each keeps its own count of checks, so a pass over a subset
of the samples updates exactly those. The blame sets (S4): the samples forgotten since their previous check
(returned by `SampleStatistics.update`) and the ``k`` worst margins (`worst_margin_samples`); the Condition B
witness samples come from `lightning_stability.theory.condition_b_constant`. A set shown cut to ``k`` samples keeps
its ``k`` smallest margins (`smallest_margins_first`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

__all__ = ["SAMPLE_COLUMNS", "SampleDynamics", "SampleStatistics", "smallest_margins_first", "worst_margin_samples"]

SAMPLE_COLUMNS = (
    "index",
    "target",
    "last_margin",
    "aum",
    "forgetting_events",
    "first_learned_check",
    "confidence",
    "variability",
    "correctness",
    "predicted",
    "checks",
)
"""The columns of a `SampleDynamics` (and of ``samples.csv``), in order."""


@dataclass(frozen=True)
class SampleDynamics:
    """Per-sample statistics over the checks so far, one entry per sample seen, sorted by sample index
    (docs/samples.md S1–S3).

    Attributes:
        index: ``[M]`` sample indices (positions in the certified dataset).
        target: the label of the last check.
        last_margin: ``δ`` at the last check that saw the sample.
        aum: mean margin over the checks that saw it (S1).
        forgetting_events: transitions correct → wrong between its consecutive checks (S3).
        first_learned_check: the check (0 = the first check of the run) from which it has been correct at every
            check since; ``-1`` if it is wrong at its last check (an empty cell in ``samples.csv``).
        confidence: mean of ``p = exp(−ℓ)``, the probability of the true class (S2).
        variability: population standard deviation of ``p`` (S2).
        correctness: fraction of its checks with ``δ > 0``.
        predicted: the predicted class (argmax) at its last check.
        checks: how many checks saw it.
    """

    index: Tensor
    target: Tensor
    last_margin: Tensor
    aum: Tensor
    forgetting_events: Tensor
    first_learned_check: Tensor
    confidence: Tensor
    variability: Tensor
    correctness: Tensor
    predicted: Tensor
    checks: Tensor

    def __len__(self) -> int:
        return int(self.index.numel())

    def columns(self) -> dict[str, Tensor]:
        """``{column: [M] tensor}`` in `SAMPLE_COLUMNS` order."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def suspects(self, k: int, by: str = "aum") -> SampleDynamics:
        """The ``k`` samples most likely mislabelled by ``by``: the lowest ``aum``, ``confidence``, ``correctness``
        or ``last_margin``, or the most ``forgetting_events`` (ties by sample index)."""
        if by not in SAMPLE_COLUMNS or by in ("index", "target", "predicted", "checks", "first_learned_check"):
            raise ValueError(
                f"`by` must be one of aum, last_margin, confidence, variability, correctness, forgetting_events; "
                f"got {by!r}."
            )
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive integer, got {k!r}.")
        values = getattr(self, by).to(torch.float64)
        descending = by in ("forgetting_events", "variability")
        order = torch.sort(-values if descending else values, stable=True).indices[:k]
        return SampleDynamics(**{name: column[order] for name, column in self.columns().items()})

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with one row per sample and the columns of `SAMPLE_COLUMNS` (``first_learned_check``
        as a nullable integer, empty where the sample is not learned).

        Raises:
            ImportError: if pandas is not installed, saying how to install it.
        """
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError:
            raise ImportError(
                "SampleDynamics.to_pandas() needs pandas, which is not installed: `pip install pandas`. Without it, "
                "use `.columns()` (a dict of tensors) or the samples.csv file."
            ) from None
        data: dict[str, Any] = {}
        for name, column in self.columns().items():
            values = column.cpu().numpy()
            if name == "first_learned_check":
                data[name] = pd.array([None if v < 0 else int(v) for v in values.tolist()], dtype="Int64")
            else:
                data[name] = values
        return pd.DataFrame(data)


def _grown(tensor: Tensor, size: int, fill: float | int | bool) -> Tensor:
    if tensor.numel() >= size:
        return tensor
    return torch.cat([tensor, torch.full((size - tensor.numel(),), fill, dtype=tensor.dtype)])


class SampleStatistics:
    """Running per-sample statistics over margin passes (see the module documentation), ``O(N)`` memory.

    Args:
        keep_history: also keep every update's margins (``O(N × checks)`` memory): `history`.

    Example:
        >>> import torch
        >>> stats = SampleStatistics()
        >>> idx, y = torch.tensor([0, 1]), torch.tensor([0, 1])
        >>> _ = stats.update(idx, y, torch.tensor([1.0, 2.0]), torch.tensor([0.1, 0.2]), torch.tensor([0, 1]))
        >>> stats.update(idx, y, torch.tensor([-1.0, 2.0]), torch.tensor([1.5, 0.1]), torch.tensor([1, 1]))
        tensor([0])
        >>> stats.result().forgetting_events.tolist(), stats.result().aum.tolist()
        ([1, 0], [0.0, 2.0])
    """

    def __init__(self, keep_history: bool = False) -> None:
        self.keep_history = bool(keep_history)
        self.checks = 0
        empty_long = torch.zeros(0, dtype=torch.long)
        empty_float = torch.zeros(0, dtype=torch.float64)
        self.target = empty_long.clone()
        self.seen = empty_long.clone()
        self.correct_count = empty_long.clone()
        self.forgetting = empty_long.clone()
        self.learned_since = empty_long.clone()  # -1: wrong at its last check
        self.margin_mean = empty_float.clone()
        self.confidence_mean = empty_float.clone()
        self.confidence_m2 = empty_float.clone()
        self.last_margin = empty_float.clone()
        self.predicted = empty_long.clone()
        self.history: list[tuple[Tensor, Tensor]] = []
        """``(indices, margins)`` of every update, if ``keep_history``."""

    _STATE = (
        "target",
        "seen",
        "correct_count",
        "forgetting",
        "learned_since",
        "margin_mean",
        "confidence_mean",
        "confidence_m2",
        "last_margin",
        "predicted",
    )

    def _grow(self, size: int) -> None:
        fills: dict[str, float | int] = {"learned_since": -1, "predicted": -1, "target": -1, "last_margin": torch.nan}
        for name in self._STATE:
            setattr(self, name, _grown(getattr(self, name), size, fills.get(name, 0)))

    def update(self, indices: Tensor, targets: Tensor, margins: Tensor, losses: Tensor, predicted: Tensor) -> Tensor:
        """Fold one pass into the statistics; returns the indices (sorted) of the samples *forgotten* at this pass:
        correct (``δ > 0``) at the previous check that saw them, wrong now.

        Args:
            indices: ``[B]`` distinct sample indices (``≥ 0``) of the pass.
            targets: ``[B]`` labels of those samples.
            margins: ``[B]`` their margins ``δ``.
            losses: ``[B]`` their cross entropies ``ℓ``.
            predicted: ``[B]`` their predicted classes.

        Raises:
            ValueError: if the vectors differ in length, an index is negative or repeated, or a value is not finite.
        """
        indices = indices.detach().reshape(-1).long().cpu()
        vectors = [targets, margins, losses, predicted]
        if any(vector.numel() != indices.numel() for vector in vectors):
            raise ValueError(
                "SampleStatistics.update: indices, targets, margins, losses and predicted must have one entry per "
                f"sample, got lengths {[int(v.numel()) for v in [indices, *vectors]]}."
            )
        if indices.numel() and int(indices.min()) < 0:
            raise ValueError("SampleStatistics.update: sample indices must be >= 0.")
        ascending = indices.numel() < 2 or bool((indices[1:] > indices[:-1]).all())  # a margin pass's order
        if not ascending and torch.unique(indices).numel() != indices.numel():
            raise ValueError("SampleStatistics.update: a sample index occurs twice in one pass.")
        delta = margins.detach().reshape(-1).to(torch.float64).cpu()
        loss = losses.detach().reshape(-1).to(torch.float64).cpu()
        if not (bool(torch.isfinite(delta).all()) and bool(torch.isfinite(loss).all())):
            raise ValueError("SampleStatistics.update: margins and losses must be finite.")
        if indices.numel():
            self._grow(int(indices.max()) + 1)
        # a full pass of one process is 0..N−1 in order: slices then replace the gathers and scatters
        everyone = ascending and indices.numel() == self.seen.numel()  # distinct, ascending, ≥ 0, < numel: 0..N−1
        at: Tensor | slice = slice(None) if everyone else indices
        correct = delta > 0
        previously_seen = self.seen[at] > 0
        was_correct = previously_seen & (self.last_margin[at] > 0)
        forgotten = was_correct & ~correct

        count = self.seen[at] + 1
        self.seen[at] = count
        self.target[at] = targets.detach().reshape(-1).long().cpu()
        self.predicted[at] = predicted.detach().reshape(-1).long().cpu()
        self.correct_count[at] += correct.long()
        self.forgetting[at] += forgotten.long()
        starts = torch.where(was_correct, self.learned_since[at], torch.full_like(count, self.checks))
        self.learned_since[at] = torch.where(correct, starts, torch.full_like(count, -1))
        self.margin_mean[at] += (delta - self.margin_mean[at]) / count
        probability = torch.exp(-loss)
        old_mean = self.confidence_mean[at].clone()  # a view under a slice: keep the old values
        new_mean = old_mean + (probability - old_mean) / count
        self.confidence_mean[at] = new_mean
        self.confidence_m2[at] += (probability - old_mean) * (probability - new_mean)
        self.last_margin[at] = delta
        if self.keep_history:
            self.history.append((indices.clone(), delta.clone()))
        self.checks += 1
        return torch.sort(indices[forgotten]).values

    def result(self) -> SampleDynamics:
        """The statistics of every sample seen so far, sorted by index."""
        rows = torch.nonzero(self.seen > 0).reshape(-1)
        seen = self.seen[rows].to(torch.float64)
        return SampleDynamics(
            index=rows,
            target=self.target[rows],
            last_margin=self.last_margin[rows],
            aum=self.margin_mean[rows],
            forgetting_events=self.forgetting[rows],
            first_learned_check=self.learned_since[rows],
            confidence=self.confidence_mean[rows],
            variability=torch.sqrt((self.confidence_m2[rows] / seen).clamp_min(0)),
            correctness=self.correct_count[rows].to(torch.float64) / seen,
            predicted=self.predicted[rows],
            checks=self.seen[rows],
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (tensors cloned)."""
        state: dict[str, Any] = {name: getattr(self, name).clone() for name in self._STATE}
        state["checks"] = self.checks
        state["keep_history"] = self.keep_history
        state["history"] = [(i.clone(), m.clone()) for i, m in self.history]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`.

        Raises:
            ValueError: if an entry is missing.
        """
        missing = [name for name in (*self._STATE, "checks") if name not in state]
        if missing:
            raise ValueError(f"SampleStatistics.load_state_dict: the state lacks {missing}.")
        for name in self._STATE:
            setattr(self, name, state[name].detach().cpu().clone())
        self.checks = int(state["checks"])
        self.history = [(i.clone(), m.clone()) for i, m in state.get("history", [])] if self.keep_history else []


def worst_margin_samples(indices: Tensor, margins: Tensor, k: int) -> Tensor:
    """The sample indices of the ``k`` smallest margins, smallest first (equal margins: in the given order), i.e.
    ``argsort_k δ`` (docs/samples.md S4)."""
    if k < 0:
        raise ValueError(f"`k` must be >= 0, got {k}.")
    order = torch.sort(margins.reshape(-1), stable=True).indices[:k]
    return indices.reshape(-1)[order]


def smallest_margins_first(members: Tensor, indices: Tensor, margins: Tensor, k: int) -> Tensor:
    """The ``k`` sample indices of ``members`` (a blame set) with the smallest margins, smallest first: ``members``
    sorted by ``(δ, index)`` and cut to ``k``; a member without a margin (not in ``indices``, the sorted sample
    indices whose margins are ``margins``) comes after every member with one, by index."""
    if k < 0:
        raise ValueError(f"`k` must be >= 0, got {k}.")
    members = torch.sort(members.detach().reshape(-1).cpu().to(torch.long)).values
    indices = indices.detach().reshape(-1).cpu()
    values = torch.full(members.shape, math.nan, dtype=torch.float64)
    if indices.numel() and members.numel():
        positions = torch.searchsorted(indices, members).clamp(max=indices.numel() - 1)
        found = indices[positions] == members
        values = torch.where(found, margins.detach().reshape(-1).cpu().to(torch.float64)[positions], values)
    return worst_margin_samples(members, values, k)  # a stable sort puts NaN last
