"""lightning_stability.assess.names: the names the StabilityMonitor logs under (docs/metrics.md) and its constants."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from lightning_stability import theory
from lightning_stability.assess.names import (
    CONSTANTS,
    DASHBOARD,
    FINAL,
    HEADLINE,
    final_values,
    logged_name,
    run_constants,
    subset_constants,
)

# the headline a user reads first (the names issue 22 keeps), and the groups the rest moved to
HEADLINE_NAMES = [
    "stability/accuracy",
    "stability/loss",
    "stability/loss_floor",
    "stability/theorem_a/floor",
    "stability/theorem_b/floor",
    "stability/instability_count",
]
GROUPED = [
    ("stability/instability", "stability_events/instability"),
    ("stability/stable_checks", "stability_events/stable_checks"),
    ("stability/loss_rose", "stability_events/loss_rose"),
    ("stability/flip_forgotten", "stability_events/flip_forgotten"),
    ("stability/flip_learned", "stability_events/flip_learned"),
    ("stability/margin_min", "stability_margins/margin_min"),
    ("stability/margin_quantile/q_0.05", "stability_margins/margin_quantile/q_0.05"),
]


@pytest.mark.parametrize("name", HEADLINE_NAMES)
def test_headline_names_stay_under_stability(name: str) -> None:
    assert logged_name(name) == name


@pytest.mark.parametrize(("name", "logged"), GROUPED)
def test_events_and_margins_have_their_own_groups(name: str, logged: str) -> None:
    assert logged_name(name) == logged


@pytest.mark.parametrize(
    ("name", "logged"),
    [
        ("stability/loss_lower", "stability_diagnostics/loss_lower"),
        ("stability/loss_upper", "stability_diagnostics/loss_upper"),
        ("stability/margin_loss_floor", "stability_diagnostics/margin_loss_floor"),
        ("stability/good_mass/eta_0", "stability_diagnostics/good_mass/eta_0"),
        ("stability/bad_mass/eta_0.5", "stability_diagnostics/bad_mass/eta_0.5"),
        ("stability/check_epoch", "stability_diagnostics/check_epoch"),
        ("stability/theorem_a/eta0", "stability_diagnostics/theorem_a/eta0"),
        ("stability/theorem_a/condition_a_constant", "stability_diagnostics/theorem_a/condition_a_constant"),
        ("stability/theorem_b/kappa_lower", "stability_diagnostics/theorem_b/kappa_lower"),
        ("stability/theorem_b/min_width", "stability_diagnostics/theorem_b/min_width"),
    ],
)
def test_parameters_and_masses_go_to_diagnostics(name: str, logged: str) -> None:
    assert logged_name(name) == logged


@pytest.mark.parametrize("name", ["stability/num_samples", "stability/num_classes", "stability/theorem_b/dilation"])
def test_constants_are_not_charted(name: str) -> None:
    assert logged_name(name) is None


def test_name_sets_and_final_names() -> None:
    assert CONSTANTS == {"num_samples", "num_classes", "theorem_b/dilation"}
    assert {"accuracy", "loss", "loss_floor", "theorem_a/floor", "theorem_b/floor", "instability_count"} == HEADLINE
    assert not HEADLINE & CONSTANTS
    assert FINAL == (
        "stability_final/accuracy",
        "stability_final/loss_floor",
        "stability_final/theorem_a_floor",
        "stability_final/theorem_b_floor",
        "stability_final/instability_count",
        "stability_final/stopped",
        "stability_final/max_accuracy_drop",
    )


def test_final_values_tell_a_stop_and_a_collapse_from_a_flip() -> None:
    report = SimpleNamespace(
        accuracy=0.5, loss_floor=0.25, theorem_a=SimpleNamespace(floor=0.125), theorem_b=SimpleNamespace(floor=0.0625)
    )
    checks = [(-1, 0.75, 0, 0, 0, False), (0, 1.0, 0, 0, 0, False), (1, 0.5, 0, 0, 0, True), (2, 0.4375, 0, 0, 0, True)]
    values = final_values(report, 2, checks, stopped=True)
    assert list(values) == list(FINAL)
    assert list(values.values()) == [0.5, 0.25, 0.125, 0.0625, 2.0, 1.0, 0.5]  # the 1.0 -> 0.5 fall
    rising = [(-1, 0.5, 0, 0, 0, False), (0, 0.75, 0, 0, 0, False)]
    assert final_values(report, 0, rising, stopped=False)["stability_final/max_accuracy_drop"] == 0.0
    assert final_values(report, 0, rising[:1], stopped=False)["stability_final/stopped"] == 0.0


ALL_LOGGED = [
    *HEADLINE_NAMES,
    *(logged for _, logged in GROUPED),
    "stability_margins/margin_quantile/q_0.01",
    "stability_margins/margin_quantile/q_0.5",
    "stability_diagnostics/loss_lower",
    "stability_diagnostics/loss_upper",
    "stability_diagnostics/margin_loss_floor",
    "stability_diagnostics/theorem_a/eta0",
    "stability_diagnostics/check_epoch",
    *FINAL,
]


@pytest.mark.parametrize(
    ("chart", "shown"),
    [
        (
            "accuracy and its certified floors",
            {"stability/accuracy", "stability/loss_floor", "stability/theorem_a/floor", "stability/theorem_b/floor"},
        ),
        ("instability events (count)", {"stability/instability_count"}),
        (
            "loss and its margin sandwich",
            {"stability/loss", "stability_diagnostics/loss_lower", "stability_diagnostics/loss_upper"},
        ),
        (
            "margin quantiles and the smallest margin",
            {
                "stability_margins/margin_min",
                "stability_margins/margin_quantile/q_0.01",
                "stability_margins/margin_quantile/q_0.05",
                "stability_margins/margin_quantile/q_0.5",
            },
        ),
    ],
)
def test_every_custom_scalars_chart_matches_exactly_the_tags_its_title_names(chart: str, shown: set[str]) -> None:
    """TensorBoard's Custom Scalars matches each pattern with ``re.search``: anchored, a chart shows no more."""
    patterns = DASHBOARD["stability"][chart]
    assert {tag for tag in ALL_LOGGED if any(re.search(pattern, tag) for pattern in patterns)} == shown


def test_the_dashboard_has_these_charts_only() -> None:
    assert set(DASHBOARD) == {"stability"} and len(DASHBOARD["stability"]) == 4


def test_at_most_ten_scalar_names_under_stability() -> None:
    assert len([name for name in ALL_LOGGED if name.startswith("stability/")]) == 6


def small_report() -> theory.StabilityReport:
    """A hand-made report of N = 8 samples, K = 3 classes and Theorem B's dilation Λ = 2.5."""
    a = theory.TheoremAFloor(0.4, 0.1, 0.2, 0.125, 1.0, 0.3, 2.0, 0.3)
    b = theory.TheoremBFloor(0.3, 0.1, 0.2, 0.125, 2.5, 0.125, 0.00625, 0.05, 1.5, 1.6, 0.4)
    return theory.StabilityReport(8, 3, 0.875, 0.2, 0.1, 0.5, 0.71, 0.28, -0.5, (0.0,), (0.875,), (0.125,), a, b)


def test_run_constants_of_a_small_report() -> None:
    constants = run_constants(small_report(), every_n_epochs=2, weights="balanced", tol=0.01, approximate=False)
    assert constants == {
        "stability/num_samples": 8,
        "stability/num_classes": 3,
        "stability/every_n_epochs": 2,
        "stability/weights": "balanced",
        "stability/tol": 0.01,
        "stability/theorem_b/dilation": 2.5,
        "stability/approximate": False,
    }
    # every constant of the report is one that logged_name keeps off the charts
    for name in ("stability/num_samples", "stability/num_classes", "stability/theorem_b/dilation"):
        assert name in constants and logged_name(name) is None


def test_subset_constants() -> None:
    estimate = theory.SubsetEstimate(
        draws=64,
        distinct_samples=50,
        confidence=0.95,
        accuracy=0.9,
        accuracy_lower=0.8,
        dkw_epsilon=0.17,
        quantiles={},
    )
    assert subset_constants(estimate, 5) == {
        "stability_estimate/draws": 64.0,
        "stability_estimate/distinct_samples": 50.0,
        "stability_estimate/confidence": 0.95,
        "stability_estimate/full_every_n_epochs": 5.0,
    }
    none_scheduled = subset_constants(estimate, None)
    assert none_scheduled["stability_estimate/full_every_n_epochs"] == 0.0
    assert all(isinstance(value, float) for value in none_scheduled.values())
