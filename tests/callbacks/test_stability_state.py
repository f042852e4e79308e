"""StabilityState (callbacks/stability_state.py): the checkpoint keys over the parts, and a monitor's round trip."""

from __future__ import annotations

import io

import torch

from lightning_stability import StabilityMonitor
from lightning_stability.assess.history import Comparison
from lightning_stability.callbacks.stability_state import STABILITY_STATE
from lightning_stability.records import MarginPass

INDICES = torch.tensor([0, 1, 2, 3])
TARGETS = torch.tensor([0, 1, 1, 0])
MARGINS = torch.tensor([1.5, -0.5, 2.0, 0.25], dtype=torch.float64)
LOSSES = torch.tensor([0.1, 0.9, 0.05, 0.4], dtype=torch.float64)
PREDICTED = torch.tensor([0, 0, 1, 0])


def margin_pass() -> MarginPass:
    return MarginPass(INDICES, TARGETS, MARGINS, LOSSES, PREDICTED, num_classes=2)


def test_keys_are_those_of_earlier_versions() -> None:
    """The keys of earlier versions stay (their checkpoints load); ``check_series`` (the run-so-far picture) is new,
    and a checkpoint without it loads with an empty series."""
    assert STABILITY_STATE == (
        "instability_count",
        "consecutive_instabilities",
        "instability_epochs",
        "previous",
        "sample_state",
        "subset_state",
        "check_series",
    )
    old = StabilityMonitor().state_dict()
    del old["check_series"]
    monitor = StabilityMonitor()
    monitor.history.checks = [(0, 0.5, 0.25, 0.0, 0.0, False)]
    monitor.load_state_dict(old)
    assert monitor.check_series == [(0, 0.5, 0.25, 0.0, 0.0, False)]  # untouched: the key was absent
    restored = StabilityMonitor()
    restored.load_state_dict({**old, "check_series": [[1, 0.75, 0.5, 0.25, 0.125, True]]})
    assert restored.check_series == [(1, 0.75, 0.5, 0.25, 0.125, True)]
    assert set(StabilityMonitor().state_dict()) == {
        "checks_done",
        "stop_reason",
        "last_checked_epoch",
        *STABILITY_STATE,
    }


def test_keys_read_the_parts() -> None:
    monitor = StabilityMonitor()
    monitor.history.record_exact(2, Comparison(event=True), margin_pass(), 0.3625, 0.75)
    monitor.history.record_exact(4, Comparison(event=True), margin_pass(), 0.3, 0.5)
    monitor.stop_rule.update(True)
    monitor.stop_rule.update(True)
    monitor.stop_rule.update(True)
    assert monitor.instability_count == 2
    assert monitor.instability_epochs == [2, 4]
    assert monitor.consecutive_instabilities == 3
    assert monitor.previous["loss"] == 0.3 and monitor.previous["accuracy"] == 0.5
    assert torch.equal(monitor.previous["margins"], MARGINS)


def test_keys_write_the_parts() -> None:
    monitor = StabilityMonitor()
    monitor.instability_count = 5
    monitor.instability_epochs = [0, 3]
    monitor.consecutive_instabilities = 2
    monitor.previous = {"indices": INDICES, "margins": MARGINS, "loss": 1.25, "accuracy": 0.5}
    assert (monitor.history.count, monitor.history.epochs, monitor.stop_rule.consecutive) == (5, [0, 3], 2)
    assert monitor.history.previous["loss"] == 1.25
    # the stop rule counts on from the restored value: 2 + 1 = 3 >= patience 3 stops
    monitor.stop_rule = type(monitor.stop_rule)(3, True)
    monitor.consecutive_instabilities = 2
    assert monitor.stop_rule.update(True) is True


def test_sample_state_reads_and_writes_the_statistics() -> None:
    monitor = StabilityMonitor()
    monitor.statistics.update(INDICES, TARGETS, MARGINS, LOSSES, PREDICTED)
    state = monitor.sample_state
    assert state["checks"] == 1 and torch.equal(state["last_margin"], MARGINS)
    fresh = StabilityMonitor()
    fresh.sample_state = state
    assert fresh.statistics.checks == 1
    result = fresh.statistics.result()
    assert result.index.tolist() == [0, 1, 2, 3]
    assert result.last_margin.tolist() == [1.5, -0.5, 2.0, 0.25]
    # a second check where sample 0 turns wrong: forgotten once (the state carried its correctness)
    forgotten = fresh.statistics.update(
        INDICES, TARGETS, torch.tensor([-1.0, -0.5, 2.0, 0.25], dtype=torch.float64), LOSSES, PREDICTED
    )
    assert forgotten.tolist() == [0]


def test_subset_state_none_before_the_draw() -> None:
    monitor = StabilityMonitor(subset_size=3)
    assert monitor.subset_state is None


def test_subset_state_reads_and_writes_draw_and_history() -> None:
    monitor = StabilityMonitor(subset_size=3)
    monitor.draw.load_state_dict({"indices": torch.tensor([1, 3]), "counts": torch.tensor([2, 1])})
    monitor.history.record_subset(Comparison(event=True), 0.5, 0.625)
    state = monitor.subset_state
    assert state["indices"].tolist() == [1, 3] and state["counts"].tolist() == [2, 1]
    assert state["previous"] == {"loss": 0.5, "accuracy": 0.625} and state["instability_count"] == 1

    fresh = StabilityMonitor(subset_size=3)
    fresh.subset_state = state
    assert fresh.draw.indices.tolist() == [1, 3] and fresh.draw.counts.tolist() == [2, 1]
    assert fresh.history.subset_previous == {"loss": 0.5, "accuracy": 0.625} and fresh.history.subset_count == 1

    fresh.subset_state = None  # a checkpoint before the draw resets it
    assert fresh.draw.indices is None and fresh.draw.counts is None
    assert fresh.history.subset_previous is None and fresh.history.subset_count == 0


def filled_monitor() -> StabilityMonitor:
    monitor = StabilityMonitor(subset_size=3, sample_history=True)
    monitor.history.record_exact(1, Comparison(event=True), margin_pass(), 0.3625, 0.5)
    monitor.stop_rule.update(True)
    monitor.statistics.update(INDICES, TARGETS, MARGINS, LOSSES, PREDICTED)
    monitor.draw.load_state_dict({"indices": torch.tensor([0, 2]), "counts": torch.tensor([1, 2])})
    monitor.history.record_subset(Comparison(event=False), 0.25, 0.75)
    monitor.checks_done, monitor.stop_reason, monitor.last_checked_epoch = 3, "two events", 1
    return monitor


def assert_restored(fresh: StabilityMonitor) -> None:
    assert (fresh.checks_done, fresh.stop_reason, fresh.last_checked_epoch) == (3, "two events", 1)
    assert (fresh.history.count, fresh.history.epochs, fresh.stop_rule.consecutive) == (1, [1], 1)
    assert fresh.history.previous["loss"] == 0.3625 and fresh.history.previous["accuracy"] == 0.5
    assert fresh.history.previous["indices"].tolist() == [0, 1, 2, 3]
    assert fresh.history.previous["margins"].tolist() == [1.5, -0.5, 2.0, 0.25]
    assert fresh.statistics.checks == 1
    assert fresh.statistics.result().last_margin.tolist() == [1.5, -0.5, 2.0, 0.25]
    assert len(fresh.statistics.history) == 1 and fresh.statistics.history[0][1].tolist() == [1.5, -0.5, 2.0, 0.25]
    assert fresh.draw.indices.tolist() == [0, 2] and fresh.draw.counts.tolist() == [1, 2]
    assert fresh.history.subset_previous == {"loss": 0.25, "accuracy": 0.75} and fresh.history.subset_count == 0


def test_monitor_round_trip_into_a_fresh_monitor() -> None:
    fresh = StabilityMonitor(subset_size=3, sample_history=True)
    fresh.load_state_dict(filled_monitor().state_dict())
    assert_restored(fresh)


def test_round_trip_through_a_saved_checkpoint() -> None:
    buffer = io.BytesIO()
    torch.save(filled_monitor().state_dict(), buffer)
    buffer.seek(0)
    fresh = StabilityMonitor(subset_size=3, sample_history=True)
    fresh.load_state_dict(torch.load(buffer, weights_only=False))
    assert_restored(fresh)


def test_round_trip_before_any_check_keeps_a_fresh_state() -> None:
    fresh = StabilityMonitor(subset_size=3)
    fresh.load_state_dict(StabilityMonitor(subset_size=3).state_dict())
    assert (fresh.checks_done, fresh.instability_count, fresh.consecutive_instabilities) == (0, 0, 0)
    assert fresh.previous is None and fresh.subset_state is None and fresh.statistics.checks == 0


def test_state_dict_is_a_copy_of_the_statistics() -> None:
    monitor = filled_monitor()
    state = monitor.state_dict()
    monitor.statistics.update(INDICES, TARGETS, -MARGINS, LOSSES, PREDICTED)
    assert state["sample_state"]["checks"] == 1
    assert state["sample_state"]["last_margin"].tolist() == [1.5, -0.5, 2.0, 0.25]
