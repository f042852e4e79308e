"""The names the `StabilityMonitor` logs under, and the TensorBoard layout built from them (docs/metrics.md).

* headline values under ``stability/`` (what a user reads first: at most 10 charts), the comparison with the
  previous check under ``stability_events/``, the margins' shape under ``stability_margins/``, diagnostics under
  ``stability_diagnostics/``, constants once (never a chart): `logged_name`;
* the final values logged at fit end to compare runs: `FINAL`;
* the Custom Scalars layout: `DASHBOARD`.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..theory import StabilityReport, SubsetEstimate

__all__ = [
    "CONSTANTS",
    "DASHBOARD",
    "EVENTS",
    "FINAL",
    "HEADLINE",
    "final_values",
    "logged_name",
    "run_constants",
    "subset_constants",
]

DASHBOARD = {
    "stability": {
        "accuracy and its certified floors": [
            "^stability/accuracy$",
            "^stability/loss_floor$",
            "^stability/theorem_a/floor$",
            "^stability/theorem_b/floor$",
        ],
        "instability events (count)": ["^stability/instability_count$"],
        "loss and its margin sandwich": [
            "^stability/loss$",
            "^stability_diagnostics/loss_lower$",
            "^stability_diagnostics/loss_upper$",
        ],
        "margin quantiles and the smallest margin": [
            "^stability_margins/margin_quantile/[^/]+$",
            "^stability_margins/margin_min$",
        ],
    }
}
"""The Custom Scalars layout of TensorBoard: one chart per question, each pattern anchored so that a chart shows
exactly the tags its title names."""

FINAL = (
    "stability_final/accuracy",
    "stability_final/loss_floor",
    "stability_final/theorem_a_floor",
    "stability_final/theorem_b_floor",
    "stability_final/instability_count",
    "stability_final/stopped",
    "stability_final/max_accuracy_drop",
)
"""The last check's values, logged at fit end to compare runs (TensorBoard's HParams metrics): one point each,
kept out of the ``stability/`` headline; ``stopped`` (1: the monitor stopped training) and ``max_accuracy_drop``
(the largest fall of the accuracy between two consecutive exact checks: one flipped sample or a collapse) with
them (`final_values`)."""


def final_values(
    report: StabilityReport,
    instability_count: int,
    checks: list[tuple[int, float, float, float, float, bool]],
    stopped: bool,
) -> dict[str, float]:
    """The `FINAL` values: the last exact check's accuracy and floors (``report``), the events, whether the monitor
    stopped training, and ``max(0, max_i (a_{i−1} − a_i))`` over the consecutive exact checks' accuracies ``a_i``
    (``checks``: `lightning_stability.assess.InstabilityHistory.checks`, accuracy second)."""
    accuracies = [check[1] for check in checks]
    drop = max((before - after for before, after in itertools.pairwise(accuracies)), default=0.0)
    values = (report.accuracy, report.loss_floor, report.theorem_a.floor, report.theorem_b.floor)
    return dict(zip(FINAL, (*values, float(instability_count), float(stopped), max(drop, 0.0)), strict=True))


HEADLINE = frozenset({"accuracy", "loss", "loss_floor", "theorem_a/floor", "theorem_b/floor", "instability_count"})
"""Values logged under ``stability/``: the answer to "is my accuracy stable, and when was it not?"."""

EVENTS = frozenset({"instability", "stable_checks", "loss_rose", "flip_forgotten", "flip_learned"})
"""Values of the comparison with the previous check, logged under ``stability_events/``."""

CONSTANTS = frozenset({"num_samples", "num_classes", "theorem_b/dilation"})
"""Values that do not change during a run: logged once as constants, never as a chart."""


def logged_name(name: str) -> str | None:
    """The logged name of a check's value ``stability/<key>``: unchanged for the headline values,
    ``stability_events/<key>`` for the comparison with the previous check, ``stability_margins/<key>`` for the
    smallest margin and the margin quantiles, ``stability_diagnostics/<key>`` for the theorems' parameters, masses
    and bookkeeping, ``None`` for constants."""
    key = name.removeprefix("stability/")
    if key in CONSTANTS:
        return None
    if key in HEADLINE:
        return name
    if key in EVENTS:
        return f"stability_events/{key}"
    if key == "margin_min" or key.startswith("margin_quantile/"):
        return f"stability_margins/{key}"
    return f"stability_diagnostics/{key}"


def run_constants(
    report: StabilityReport, every_n_epochs: int, weights: str, tol: float, approximate: bool
) -> dict[str, Any]:
    """What does not change during a run of exact checks: logged once (text, hyperparameters), never as a chart."""
    return {
        "stability/num_samples": report.num_samples,
        "stability/num_classes": report.num_classes,
        "stability/every_n_epochs": every_n_epochs,
        "stability/weights": weights,
        "stability/tol": tol,
        "stability/theorem_b/dilation": report.theorem_b.dilation,
        "stability/approximate": approximate,
    }


def subset_constants(estimate: SubsetEstimate | None, full_every_n_epochs: int | None) -> dict[str, float]:
    """The statistical mode's constants, logged once at its first subset check."""
    assert estimate is not None, "a subset check has an estimate"
    return {
        "stability_estimate/draws": float(estimate.draws),
        "stability_estimate/distinct_samples": float(estimate.distinct_samples),
        "stability_estimate/confidence": estimate.confidence,
        "stability_estimate/full_every_n_epochs": float(full_every_n_epochs or 0),
    }
