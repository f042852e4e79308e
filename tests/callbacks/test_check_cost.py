"""CheckCost (callbacks/check_cost.py): the ``stability_cost/`` values of a check from a scripted clock."""

from __future__ import annotations

import time

import pytest

from lightning_stability.callbacks.check_cost import CheckCost


class ScriptedClock:
    """Returns the given times one after the other (seconds)."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def scripted(cost: CheckCost, monkeypatch: pytest.MonkeyPatch, *times: float) -> ScriptedClock:
    clock = ScriptedClock(*times)
    monkeypatch.setattr(cost, "clock", clock)
    return clock


def test_disabled_logs_nothing_even_after_an_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    cost = CheckCost(False)
    scripted(cost, monkeypatch, 10.0, 30.0)
    cost.start_epoch()
    assert cost.metrics(1.0, 2.0) == {}
    assert cost.enabled is False


def test_enabled_is_a_bool() -> None:
    assert CheckCost(1).enabled is True
    assert CheckCost(0).enabled is False
    assert CheckCost(True).epoch_started is None


def test_check_before_any_epoch_has_no_epoch_share() -> None:
    # the check before training: no epoch ran, so only the two durations
    assert CheckCost(True).metrics(0.25, 0.5) == {
        "stability_cost/pass_seconds": 0.25,
        "stability_cost/theory_seconds": 0.5,
    }


def test_epoch_share_is_check_over_training_time(monkeypatch: pytest.MonkeyPatch) -> None:
    cost = CheckCost(True)
    scripted(cost, monkeypatch, 100.0, 112.0)
    cost.start_epoch()
    assert cost.epoch_started == 100.0
    # 12 s since the epoch started, of which 1 + 3 were the check: 8 s of training; the check adds 4 / 8
    assert cost.metrics(1.0, 3.0) == {
        "stability_cost/pass_seconds": 1.0,
        "stability_cost/theory_seconds": 3.0,
        "stability_cost/check_to_epoch": 0.5,
    }
    assert cost.epoch_started is None


def test_epoch_share_only_once_per_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    cost = CheckCost(True)
    scripted(cost, monkeypatch, 0.0, 10.0)
    cost.start_epoch()
    assert cost.metrics(2.0, 3.0)["stability_cost/check_to_epoch"] == 1.0  # 5 / (10 - 5)
    # a second check without a new epoch start (e.g. after resuming): no share, and the clock is not read
    assert "stability_cost/check_to_epoch" not in cost.metrics(2.0, 3.0)


@pytest.mark.parametrize("now", [5.0, 4.0])
def test_no_share_without_training_time_left(monkeypatch: pytest.MonkeyPatch, now: float) -> None:
    # the check took all (5 - 0 - 2 - 3 = 0) or more than the elapsed time: no division by a non-positive time
    cost = CheckCost(True)
    scripted(cost, monkeypatch, 0.0, now)
    cost.start_epoch()
    assert cost.metrics(2.0, 3.0) == {"stability_cost/pass_seconds": 2.0, "stability_cost/theory_seconds": 3.0}
    assert cost.epoch_started is None


def test_clock_is_perf_counter() -> None:
    before = time.perf_counter()
    reading = CheckCost.clock()
    after = time.perf_counter()
    assert before <= reading <= after
