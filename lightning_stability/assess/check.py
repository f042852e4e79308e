"""Assess: one check's margin pass turned into one typed result (docs/design.md) — `assess_exact` for an exact
check, `assess_subset` for a subset check of the statistical mode. Pure: no Lightning, no monitor; the caller passes
the previous check (`lightning_stability.assess.history.PreviousCheck`).

An **exact** check certifies the whole training set with the weights ``μ`` (docs/theory.md §1–§8): its values go
under ``stability/`` (headline) and ``stability_diagnostics/`` (see `lightning_stability.assess.names`). A
**subset** check (§11) evaluates the drawn samples, weighted by their draw counts: its accuracy and quantiles come
with confidence bounds, its floors are point estimates on the draws' empirical measure, all under
``stability_estimate/``; its instability event compares the drawn samples with themselves at the previous subset
check. Both share their first step (`_certify`: ``μ``, the loss and ``certify``'s report) and the counting of
their events (`_count_event`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

import torch
from torch import Tensor

from .. import theory
from ..records import BlameSets, MarginPass
from .blame import blame_sets
from .history import Comparison, PreviousCheck, compare_checks
from .names import logged_name

__all__ = [
    "CheckResult",
    "CheckSettings",
    "ExactCheck",
    "SubsetCheck",
    "assess_exact",
    "assess_subset",
    "sample_weights",
]


@dataclass(frozen=True)
class CheckSettings:
    """What the user asked of every check (the `StabilityMonitor`'s options, validated there).

    Attributes:
        tol: the accuracy drop tolerated before a loss decrease is an instability event.
        grid: overrides of `lightning_stability.theory.CertificateGrid` for ``certify``.
        quantiles: the margin quantiles to log.
        confidence: ``1 − α`` of the subset check's bounds.
        blame_size: the worst margins blamed per check.
    """

    tol: float
    grid: Mapping[str, Any]
    quantiles: tuple[float, ...]
    confidence: float
    blame_size: int


@dataclass(frozen=True)
class ExactCheck:
    """Everything an exact check found (§1–§8), as its steps after ``assess`` (publish, decide) need it.

    Attributes:
        exact: ``True`` (a class constant: `CheckResult` callers branch on it).
        epoch: the checked epoch (``-1``: before training).
        margin_pass: the pass it certified; ``weights``: the weights given to ``certify`` (``None``: uniform);
            ``mu``: the normalised weights ``μ``.
        loss: the ``μ``-weighted cross entropy; ``report``: ``certify``'s report on the pass.
        comparison: against the previous exact check (with the flip masses).
        instability_count: the exact checks' events so far, this one included.
        forgotten: the samples forgotten since their previous check (per-sample statistics).
        blame: the blame sets, if asked for or at an event.
        metrics: every value the check logs, under its logged name (cost apart).
    """

    exact: ClassVar[Literal[True]] = True
    epoch: int
    margin_pass: MarginPass
    weights: Tensor | None
    mu: Tensor
    loss: float
    report: theory.StabilityReport
    comparison: Comparison
    instability_count: int
    forgotten: Tensor
    blame: BlameSets | None
    metrics: dict[str, float]

    @property
    def accuracy(self) -> float:
        """The certified samples' ``μ``-weighted accuracy."""
        return self.report.accuracy

    @property
    def floors(self) -> tuple[float, float, float]:
        """The loss floor (§3), the Theorem A floor (§5) and the Theorem B floor (§6)."""
        return self.report.loss_floor, self.report.theorem_a.floor, self.report.theorem_b.floor

    def as_previous(self) -> PreviousCheck:
        """This check as the next exact check compares with it (copies of the pass's indices and margins)."""
        return PreviousCheck.of_pass(self.margin_pass, self.loss, self.report.accuracy)


@dataclass(frozen=True)
class SubsetCheck:
    """Everything a subset check of the statistical mode found (§11).

    Attributes:
        exact: ``False`` (a class constant: `CheckResult` callers branch on it).
        epoch: the checked epoch (``-1``: before training).
        margin_pass: the pass of the drawn samples; ``mu``: their draw counts, normalised.
        loss: the ``μ``-weighted cross entropy of the draws; ``report``: ``certify``'s report on the draws'
            empirical measure (its floors are point estimates, not certificates).
        estimate: the accuracy and quantiles with their confidence bounds.
        comparison: against the previous subset check (no flip masses).
        instability_count: the subset checks' events so far, this one included.
        metrics: every value the check logs, under ``stability_estimate/`` (cost apart).
    """

    exact: ClassVar[Literal[False]] = False
    epoch: int
    margin_pass: MarginPass
    mu: Tensor
    loss: float
    report: theory.StabilityReport
    estimate: theory.SubsetEstimate
    comparison: Comparison
    instability_count: int
    metrics: dict[str, float]

    @property
    def accuracy(self) -> float:
        """The estimated accuracy: the fraction of draws with a positive margin."""
        return self.estimate.accuracy

    def as_previous(self) -> PreviousCheck:
        """This check as the next subset check compares with it (loss and accuracy only)."""
        return PreviousCheck(self.loss, self.estimate.accuracy)


CheckResult: TypeAlias = ExactCheck | SubsetCheck
"""One check's result: branch on ``result.exact`` (type checkers narrow on it) or ``isinstance``."""


def _certify(
    margin_pass: MarginPass, weights: Tensor | None, settings: CheckSettings
) -> tuple[Tensor, float, theory.SortedMargins, theory.StabilityReport]:
    """``μ`` (§1), the ``μ``-weighted cross entropy, the sorted margins (one sort for ``certify`` and the quantiles)
    and ``certify``'s report (§2–§7) with that loss."""
    mu = theory.validation.normalised_weights(weights, margin_pass.margins.shape[0], margin_pass.margins.device)
    loss = float((mu * margin_pass.losses).sum())
    distribution = theory.SortedMargins(margin_pass.margins, weights)
    report = theory.certify(
        margin_pass.margins,
        margin_pass.num_classes,
        weights=weights,
        loss=loss,
        sorted_margins=distribution,
        **settings.grid,
    )
    return mu, loss, distribution, report


def _count_event(values: dict[str, float], prefix: str, comparison: Comparison, instability_count: int) -> int:
    """Add ``{prefix}/instability`` and ``{prefix}/instability_count`` (§8) to ``values``; returns the count."""
    count = instability_count + int(comparison.event)
    values[f"{prefix}/instability"] = float(comparison.event)
    values[f"{prefix}/instability_count"] = float(count)
    return count


def assess_exact(
    margin_pass: MarginPass,
    weights: Tensor | None,
    settings: CheckSettings,
    *,
    epoch: int,
    previous: PreviousCheck | None,
    instability_count: int,
    checks_done: int,
    forgotten: Tensor,
    blame: bool = False,
    data_cluster: Tensor | None = None,
) -> ExactCheck:
    """Certify the whole training set's ``margin_pass`` (§1–§7) and compare it with the previous exact check (§8).

    The metrics are, under their logged names (`lightning_stability.assess.names.logged_name`): the report's values
    (`lightning_stability.theory.StabilityReport.to_dict`), the margin quantiles of the weighted ``F`` (§1: the
    smallest margin with ``F(δ) ≥ q``), the check epoch, the event, the events so far, the stable checks, whether
    the loss rose and, when both checks certified the same samples, the flip masses.

    Args:
        margin_pass: the collected pass; ``weights``: per-sample weights of its samples, ``None`` for uniform.
        settings: the user's options.
        epoch: the checked epoch.
        previous: the previous exact check (`lightning_stability.assess.history.InstabilityHistory.previous`).
        instability_count: the exact checks' events before this check; ``checks_done``: the exact checks before it.
        forgotten: the samples forgotten since their previous check.
        blame: pick the blame sets even without an instability event (a margin file shows them; they cost a second
            Condition B bracket, so only when shown).
        data_cluster: the data check's witness indices (§9), for the blame sets.
    """
    mu, loss, distribution, report = _certify(margin_pass, weights, settings)
    values = {f"stability/{key}": value for key, value in report.to_dict().items()}
    for level in settings.quantiles:
        values[f"stability/margin_quantile/q_{level:g}"] = distribution.quantile_value(level)
    values["stability/check_epoch"] = float(epoch)
    comparison = compare_checks(previous, loss, report.accuracy, settings.tol, margin_pass, weights)
    count = _count_event(values, "stability", comparison, instability_count)
    values["stability/stable_checks"] = float(checks_done + 1 - count)  # every check is an event or not
    values["stability/loss_rose"] = float(comparison.loss_rose)
    if not math.isnan(comparison.flip_forgotten):
        values["stability/flip_forgotten"] = comparison.flip_forgotten
        values["stability/flip_learned"] = comparison.flip_learned
    sets = None
    if blame or comparison.event:
        grid = theory.CertificateGrid(**settings.grid)
        sets = blame_sets(margin_pass, report, weights, grid, forgotten, settings.blame_size, data_cluster)
    return ExactCheck(
        epoch=epoch,
        margin_pass=margin_pass,
        weights=weights,
        mu=mu,
        loss=loss,
        report=report,
        comparison=comparison,
        instability_count=count,
        forgotten=forgotten,
        blame=sets,
        metrics={logged: value for name, value in values.items() if (logged := logged_name(name)) is not None},
    )


def assess_subset(
    margin_pass: MarginPass,
    draw_counts: Tensor,
    settings: CheckSettings,
    *,
    epoch: int,
    previous: PreviousCheck | None,
    instability_count: int,
) -> SubsetCheck:
    """Estimate from the drawn samples' ``margin_pass``, weighted by their ``draw_counts`` (§11), and compare the
    drawn samples with themselves at the previous subset check (§8).

    The metrics, all under ``stability_estimate/``: the estimate's accuracy with its Clopper–Pearson lower bound,
    the DKW ``ε`` and the quantile band (`lightning_stability.theory.SubsetEstimate.to_dict`, without the
    constants ``draws``, ``distinct_samples`` and ``confidence``, logged once), the loss, the three floors on the
    draws' empirical measure (point estimates), the check epoch, the event and the events so far.

    Args:
        margin_pass: the pass of the drawn samples; ``draw_counts``: the draw count of each of its samples.
        settings: the user's options.
        epoch: the checked epoch.
        previous: the previous subset check (`lightning_stability.assess.history.InstabilityHistory.subset_previous`).
        instability_count: the subset checks' events before this check.

    Raises:
        ValueError: if ``draw_counts`` is not one count per sample of the pass.
    """
    if draw_counts.shape != margin_pass.margins.shape:
        raise ValueError(
            f"a subset check needs the draw counts of its samples, one per sample of the pass: got shape "
            f"{tuple(draw_counts.shape)} for {margin_pass.margins.shape[0]} samples."
        )
    mu, loss, _, report = _certify(margin_pass, draw_counts.to(torch.float64), settings)
    estimate = theory.subset_estimate(
        margin_pass.margins, draw_counts, confidence=settings.confidence, levels=settings.quantiles
    )
    metrics = {
        f"stability_estimate/{key}": value
        for key, value in estimate.to_dict().items()
        if key not in ("draws", "distinct_samples", "confidence")  # constants, logged once
    }
    metrics.update(
        {
            "stability_estimate/loss": loss,
            "stability_estimate/loss_floor": report.loss_floor,
            "stability_estimate/theorem_a/floor": report.theorem_a.floor,
            "stability_estimate/theorem_b/floor": report.theorem_b.floor,
            "stability_estimate/check_epoch": float(epoch),
        }
    )
    comparison = compare_checks(previous, loss, estimate.accuracy, settings.tol)
    count = _count_event(metrics, "stability_estimate", comparison, instability_count)
    return SubsetCheck(
        epoch=epoch,
        margin_pass=margin_pass,
        mu=mu,
        loss=loss,
        report=report,
        estimate=estimate,
        comparison=comparison,
        instability_count=count,
        metrics=metrics,
    )


def sample_weights(option: str | Tensor, margin_pass: MarginPass, exact_length: bool) -> Tensor | None:
    """The weights of the pass's samples from the ``weights`` option: a tensor's entries at the pass's indices,
    ``1 / class count`` for ``"balanced"``, ``None`` for uniform.

    Raises:
        ValueError: if a weights tensor has too few entries (or, with ``exact_length``, not one per sample).
    """
    if isinstance(option, Tensor):
        weights = option.detach().to(torch.float64).reshape(-1)
        passed = margin_pass.indices.numel() + margin_pass.ignored  # the ignored ones are outside the certified set
        if int(margin_pass.indices.max()) >= weights.shape[0] or (exact_length and weights.shape[0] != passed):
            raise ValueError(
                f"StabilityMonitor: `weights` has {weights.shape[0]} entries but {passed} samples were passed; "
                "pass one weight per training sample."
            )
        return weights[margin_pass.indices]
    if option == "balanced":
        counts = torch.bincount(margin_pass.targets, minlength=margin_pass.num_classes).to(torch.float64)
        return 1.0 / counts[margin_pass.targets]
    return None
