"""lightning_stability.check_events: which saved checks were instability events (docs/theory.md §8), on hand-made reports."""

from __future__ import annotations

import math

import pytest

from lightning_stability.check_events import EVENT_LABEL, instability_events


def checks(*reports: dict[str, float]) -> list[dict]:
    return [{"epoch": epoch, "report": dict(report)} for epoch, report in enumerate(reports)]


# (loss, accuracy): check 1 lowers both (an event); check 2 raises the accuracy; check 3 lowers the accuracy while the
# loss rises (no event); check 4 lowers the loss with the accuracy unchanged (no event: it must *fall*, tol 0);
# check 5 lowers both again (an event)
HAND = [(0.5, 0.9), (0.4, 0.8), (0.3, 0.95), (0.35, 0.9), (0.2, 0.9), (0.1, 0.85)]


def test_events_are_recomputed_with_tol_zero_without_flags() -> None:
    assert instability_events(checks(*({"loss": l, "accuracy": a} for l, a in HAND))) == ([1, 5], True)


def test_a_tiny_accuracy_drop_is_an_event_with_tol_zero() -> None:
    assert instability_events(checks({"loss": 1.0, "accuracy": 0.5}, {"loss": 0.999, "accuracy": 0.4999})) == (
        [1],
        True,
    )


@pytest.mark.parametrize("key", ["instability", "stability_events/instability"])
def test_the_monitor_s_flags_win(key: str) -> None:
    # flags that disagree with the (loss, accuracy) recomputation: the flags are read (≥ 0.5 is an event); the
    # first check's flag is never an event (no previous check)
    reports = [{"loss": l, "accuracy": a, key: flag} for (l, a), flag in zip(HAND, [1.0, 0.0, 1.0, 0.0, 0.5, 0.49])]
    assert instability_events(checks(*reports)) == ([2, 4], False)


def test_flags_missing_from_one_report_are_all_recomputed() -> None:
    reports = [{"loss": l, "accuracy": a, "instability": 1.0} for l, a in HAND]
    del reports[3]["instability"]
    assert instability_events(checks(*reports)) == ([1, 5], True)
    # the first report alone may lack the flag
    del reports[0]["instability"]
    reports[3]["instability"] = 1.0
    assert instability_events(checks(*reports)) == ([1, 2, 3, 4, 5], False)


def test_missing_or_non_finite_values_are_no_event() -> None:
    reports = [
        {"loss": 0.5, "accuracy": 0.9},
        {"loss": 0.4, "accuracy": math.nan},  # no accuracy: neither 0 -> 1 nor 1 -> 2 is compared
        {"loss": 0.3, "accuracy": 0.7},
        {"accuracy": 0.6},  # no loss
        {"loss": 0.2, "accuracy": 0.5},
        {"loss": 0.1, "accuracy": 0.4},  # an event against check 4
    ]
    assert instability_events(checks(*reports)) == ([5], True)


def test_one_or_no_check_has_no_event() -> None:
    assert instability_events([]) == ([], True)
    assert instability_events(checks({"loss": 0.1, "accuracy": 0.2, "instability": 1.0})) == ([], True)


def test_event_label() -> None:
    assert EVENT_LABEL == "loss fell while accuracy fell"


def test_the_saved_verdict_of_the_monitor_wins_over_a_recomputation() -> None:
    """A drop of 0.005 with a falling loss is an event at tol 0, not at the monitor's tol 0.01: its saved
    ``instability`` flags are used as they are, so the report never says "tol 0" for such a run."""
    checks = [
        {"report": {"loss": 1.0, "accuracy": 0.9}},
        {"report": {"loss": 0.9, "accuracy": 0.895}, "instability": 0.0},
        {"report": {"loss": 0.8, "accuracy": 0.85}, "instability": 1.0},
    ]
    assert instability_events(checks) == ([2], False)
    recomputed = [{"report": check["report"]} for check in checks]
    assert instability_events(recomputed) == ([1, 2], True)
