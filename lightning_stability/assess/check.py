"""Assess: one check's margin pass turned into one typed result (docs/design.md), for the exact check and the
statistical mode's subset check alike. Pure: no Lightning, no monitor; the caller passes the previous state.

An **exact** check certifies the whole training set with the weights ``μ`` (docs/theory.md §1–§8): its values go
under ``stability/`` (headline) and ``stability_diagnostics/`` (see `lightning_stability.assess.names`). A
**subset** check (§11) evaluates the drawn samples, weighted by their draw counts: its accuracy and quantiles come
with confidence bounds, its floors are point estimates on the draws' empirical measure, all under
``stability_estimate/``; its instability event compares the drawn samples with themselves at the previous subset
check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import theory
from ..records import BlameSets, MarginPass
from .blame import blame_sets
from .history import Comparison, compare_checks
from .names import logged_name

__all__ = ["CheckResult", "CheckSettings", "assess_check", "sample_weights"]


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
class CheckResult:
    """Everything one check found, as its steps after ``assess`` (publish, decide) need it.

    Attributes:
        epoch: the checked epoch (``-1``: before training).
        exact: the exact full check (``False``: a subset check of the statistical mode).
        margin_pass: the pass it assessed; ``weights``: the weights given to ``certify`` (``None``: uniform);
            ``mu``: the normalised weights ``μ``.
        loss: the ``μ``-weighted cross entropy; ``report``: ``certify``'s report on the pass.
        estimate: the subset check's estimate with its bounds (``None`` for an exact check).
        comparison: against the previous check of the same kind.
        instability_count: the events of this kind so far, this one included.
        forgotten: the samples forgotten since their previous check (per-sample statistics).
        blame: the blame sets, if asked for (exact checks only).
        metrics: every value the check logs, under its logged name (cost apart).
    """

    epoch: int
    exact: bool
    margin_pass: MarginPass
    weights: Tensor | None
    mu: Tensor
    loss: float
    report: theory.StabilityReport
    estimate: theory.SubsetEstimate | None
    comparison: Comparison
    instability_count: int
    forgotten: Tensor
    blame: BlameSets | None
    metrics: dict[str, float]


def assess_check(
    margin_pass: MarginPass,
    weights: Tensor | None,
    settings: CheckSettings,
    *,
    epoch: int,
    exact: bool,
    previous: dict[str, Any] | None,
    instability_count: int,
    checks_done: int,
    forgotten: Tensor,
    draw_counts: Tensor | None = None,
    blame: bool = False,
    data_cluster: Tensor | None = None,
) -> CheckResult:
    """Certify ``margin_pass`` and compare it with ``previous`` (the previous check of this kind).

    Args:
        margin_pass: the collected pass; ``weights``: per-sample weights of its samples, ``None`` for uniform.
        settings: the user's options.
        epoch: the checked epoch; ``exact``: an exact check, else a subset one.
        previous: the previous check of this kind (`lightning_stability.assess.history.InstabilityHistory`).
        instability_count: the events of this kind before this check; ``checks_done``: the checks before it.
        forgotten: the samples forgotten since their previous check.
        draw_counts: a subset check's draw count of each sample of the pass (its weights are these counts).
        blame: pick the blame sets even without an instability event (a margin file shows them; they cost a second
            Condition B bracket, so only when shown).
        data_cluster: the data check's witness indices, for the blame sets.
    """
    if not exact:
        if draw_counts is None:
            raise ValueError("a subset check needs the draw counts of its samples (`draw_counts=`).")
        weights = draw_counts.to(torch.float64)
    mu = theory.validation.normalised_weights(weights, margin_pass.margins.shape[0], margin_pass.margins.device)
    loss = float((mu * margin_pass.losses).sum())
    distribution = theory.SortedMargins(margin_pass.margins, weights)  # one sort for certify and the quantiles
    report = theory.certify(
        margin_pass.margins,
        margin_pass.num_classes,
        weights=weights,
        loss=loss,
        sorted_margins=distribution,
        **settings.grid,
    )
    estimate = None
    if exact:
        values = {f"stability/{key}": value for key, value in report.to_dict().items()}
        for level in settings.quantiles:  # quantiles of the weighted F (§1): the smallest margin with F(δ) ≥ q
            values[f"stability/margin_quantile/q_{level:g}"] = distribution.quantile_value(level)
        values["stability/check_epoch"] = float(epoch)
        comparison = compare_checks(previous, loss, report.accuracy, settings.tol, margin_pass, weights)
        count = instability_count + int(comparison.event)
        values["stability/instability"] = float(comparison.event)
        values["stability/instability_count"] = float(count)
        values["stability/stable_checks"] = float(checks_done + 1 - count)  # every check is an event or not
        values["stability/loss_rose"] = float(comparison.loss_rose)
        if not math.isnan(comparison.flip_forgotten):
            values["stability/flip_forgotten"] = comparison.flip_forgotten
            values["stability/flip_learned"] = comparison.flip_learned
        metrics = {logged: value for name, value in values.items() if (logged := logged_name(name)) is not None}
    else:
        assert draw_counts is not None
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
        count = instability_count + int(comparison.event)
        metrics["stability_estimate/instability"] = float(comparison.event)
        metrics["stability_estimate/instability_count"] = float(count)
    sets = None
    if exact and (blame or comparison.event):
        grid = theory.CertificateGrid(**settings.grid)
        sets = blame_sets(margin_pass, report, weights, grid, forgotten, settings.blame_size, data_cluster)
    return CheckResult(
        epoch=epoch,
        exact=exact,
        margin_pass=margin_pass,
        weights=weights,
        mu=mu,
        loss=loss,
        report=report,
        estimate=estimate,
        comparison=comparison,
        instability_count=count,
        forgotten=forgotten,
        blame=sets,
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
