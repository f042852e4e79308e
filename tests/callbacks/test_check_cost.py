"""CheckCost (callbacks/check_cost.py): the ``stability_cost/`` values of a check from its four clock readings."""

from __future__ import annotations

import time

import pytest

from lightning_stability.callbacks.check_cost import CheckCost


def started_epoch_at(moment: float, monkeypatch: pytest.MonkeyPatch) -> CheckCost:
    cost = CheckCost(True)
    monkeypatch.setattr(cost, "clock", lambda: moment)
    cost.start_epoch()
    return cost


def test_disabled_logs_nothing_even_after_an_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    cost = CheckCost(False)
    monkeypatch.setattr(cost, "clock", lambda: 10.0)
    cost.start_epoch()
    assert cost.metrics(11.0, 12.0, 13.0, 14.0) == {}
    assert cost.enabled is False


def test_enabled_is_a_bool() -> None:
    assert CheckCost(1).enabled is True
    assert CheckCost(0).enabled is False
    assert CheckCost(True).epoch_started is None


def test_check_before_any_epoch_has_the_parts_and_the_total_only() -> None:
    # the check before training: no epoch ran, so only the durations (binary fractions: exact sums)
    assert CheckCost(True).metrics(1.0, 1.25, 1.75, 2.5) == {
        "stability_cost/pass_seconds": 0.25,
        "stability_cost/theory_seconds": 0.5,
        "stability_cost/publish_seconds": 0.75,
        "stability_cost/total_seconds": 1.5,
    }


def test_epoch_share_is_the_total_over_the_training_time_before_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    cost = started_epoch_at(100.0, monkeypatch)
    assert cost.epoch_started == 100.0
    # trained 100 → 108 (8 s), then the check 108 → 112: pass 1, theory 2, publishing 1; it adds 4 / 8
    assert cost.metrics(108.0, 109.0, 111.0, 112.0) == {
        "stability_cost/pass_seconds": 1.0,
        "stability_cost/theory_seconds": 2.0,
        "stability_cost/publish_seconds": 1.0,
        "stability_cost/total_seconds": 4.0,
        "stability_cost/check_to_epoch": 0.5,
    }
    assert cost.epoch_started is None


def test_epoch_share_only_once_per_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    cost = started_epoch_at(0.0, monkeypatch)
    assert cost.metrics(5.0, 7.0, 9.0, 10.0)["stability_cost/check_to_epoch"] == 1.0  # 5 / 5
    # a second check without a new epoch start (e.g. after resuming): no share
    assert "stability_cost/check_to_epoch" not in cost.metrics(11.0, 12.0, 13.0, 14.0)


def test_no_share_without_training_time(monkeypatch: pytest.MonkeyPatch) -> None:
    cost = started_epoch_at(5.0, monkeypatch)  # the check starts the moment the epoch did: no division by zero
    assert "stability_cost/check_to_epoch" not in cost.metrics(5.0, 6.0, 7.0, 8.0)
    assert cost.epoch_started is None


def test_clock_is_perf_counter() -> None:
    before = time.perf_counter()
    reading = CheckCost.clock()
    after = time.perf_counter()
    assert before <= reading <= after
