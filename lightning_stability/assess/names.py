"""The names the `StabilityMonitor` logs under, and the TensorBoard layout built from them (docs/metrics.md).

* headline values under ``stability/`` (what a user reads first), diagnostics under ``stability_diagnostics/``,
  constants once (never a chart): `logged_name`;
* the final values logged at fit end to compare runs: `FINAL`;
* the Custom Scalars layout: `DASHBOARD`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..theory import StabilityReport, SubsetEstimate

__all__ = ["CONSTANTS", "DASHBOARD", "FINAL", "HEADLINE", "logged_name", "run_constants", "subset_constants"]

DASHBOARD = {
    "stability": {
        "accuracy and its certified floors": [
            "stability/accuracy",
            "stability/loss_floor",
            "stability/theorem_a/floor",
            "stability/theorem_b/floor",
        ],
        "margin quantiles": [r"stability/margin_quantile/.*", "stability/margin_min"],
        "instability events": ["stability/instability_count", "stability/loss_rose"],
        "loss and its margin sandwich": [
            "stability/loss",
            "stability_diagnostics/loss_lower",
            "stability_diagnostics/loss_upper",
        ],
    }
}
"""The Custom Scalars layout of TensorBoard: the question the monitor answers, on one chart."""

FINAL = (
    "stability/final/accuracy",
    "stability/final/loss_floor",
    "stability/final/theorem_a_floor",
    "stability/final/theorem_b_floor",
    "stability/final/instability_count",
)
"""The last check's values, logged at fit end to compare runs (TensorBoard's HParams metrics)."""

HEADLINE = frozenset(
    {
        "accuracy",
        "loss",
        "loss_floor",
        "theorem_a/floor",
        "theorem_b/floor",
        "margin_min",
        "instability",
        "instability_count",
        "stable_checks",
        "loss_rose",
        "flip_forgotten",
        "flip_learned",
    }
)
"""Values logged under ``stability/`` (with the margin quantiles): what a user reads first."""

CONSTANTS = frozenset({"num_samples", "num_classes", "theorem_b/dilation"})
"""Values that do not change during a run: logged once as constants, never as a chart."""


def logged_name(name: str) -> str | None:
    """The logged name of a check's value ``stability/<key>``: unchanged for the headline values and the margin
    quantiles, ``stability_diagnostics/<key>`` for the theorems' parameters, masses and bookkeeping, ``None``
    for constants."""
    key = name.removeprefix("stability/")
    if key in CONSTANTS:
        return None
    if key in HEADLINE or key.startswith("margin_quantile/"):
        return name
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
