"""The StabilityMonitor's checkpoint state (callbacks/stability.py ``state_dict``/``load_state_dict``, composed of
its parts' own ``state_dict``s) and the checkpoints of release 0.1.0 (callbacks/stability_options.py
``upgraded_state``, ``LEGACY_KEYS``): the release's checkpoint, kept as a fixture, loads with every value it held."""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from lightning_stability import StabilityMonitor
from lightning_stability.assess.history import Comparison, PreviousCheck
from lightning_stability.callbacks.stability_options import LEGACY_KEYS, upgraded_state
from lightning_stability.records import MarginPass

from ..assess.test_history import exact_check, subset_check

FIXTURES = Path(__file__).parent / "fixtures"
INDICES = torch.tensor([0, 1, 2, 3])
TARGETS = torch.tensor([0, 1, 1, 0])
MARGINS = torch.tensor([1.5, -0.5, 2.0, 0.25], dtype=torch.float64)
LOSSES = torch.tensor([0.1, 0.9, 0.05, 0.4], dtype=torch.float64)
PREDICTED = torch.tensor([0, 0, 1, 0])
KEYS = {"checks_done", "stop_reason", "last_checked_epoch", "history", "stop_rule", "statistics", "draw"}


def margin_pass() -> MarginPass:
    return MarginPass(INDICES, TARGETS, MARGINS, LOSSES, PREDICTED, num_classes=2)


def legacy(state: dict) -> dict:
    """``state`` in the flat layout release 0.1.0 wrote (written out by hand, not with the package's map)."""
    history, draw = state["history"], state["draw"]
    subset = None
    if draw["indices"] is not None:
        subset = {
            "indices": draw["indices"],
            "counts": draw["counts"],
            "previous": history["subset_previous"],
            "instability_count": history["subset_instability_count"],
        }
    return {
        "checks_done": state["checks_done"],
        "stop_reason": state["stop_reason"],
        "last_checked_epoch": state["last_checked_epoch"],
        "instability_count": history["instability_count"],
        "consecutive_instabilities": state["stop_rule"]["consecutive"],
        "instability_epochs": history["instability_epochs"],
        "previous": history["previous"],
        "sample_state": state["statistics"],
        "subset_state": subset,
        "check_series": history["checks"],
    }


def test_the_state_is_one_state_dict_per_part() -> None:
    monitor = StabilityMonitor(subset_size=3)
    state = monitor.state_dict()
    assert set(state) == KEYS
    assert state["history"] == monitor.history.state_dict()
    assert state["stop_rule"] == monitor.stop_rule.state_dict()
    assert state["draw"] == monitor.draw.state_dict() == {"indices": None, "counts": None}
    assert state["statistics"]["checks"] == 0


def test_the_legacy_map_names_every_flat_key_of_the_release() -> None:
    """Every key of release 0.1.0 (the fixture's) is mapped, or is one of the counters, the statistics or the
    subset state, which `upgraded_state` splits."""
    recorded = json.loads((FIXTURES / "stability_v0_1_0.json").read_text())["keys"]
    handled = {*LEGACY_KEYS, "checks_done", "stop_reason", "last_checked_epoch", "sample_state", "subset_state"}
    assert set(recorded) == handled


def test_a_checkpoint_without_the_series_loads_with_an_empty_series() -> None:
    """``check_series`` (the run-so-far picture) came late in 0.1.0: a checkpoint without it loads, with none."""
    old = legacy(StabilityMonitor().state_dict())
    del old["check_series"]
    monitor = StabilityMonitor()
    monitor.load_state_dict(old)
    assert monitor.check_series == []
    restored = StabilityMonitor()
    restored.load_state_dict({**old, "check_series": [[1, 0.75, 0.5, 0.25, 0.125, True]]})
    assert restored.check_series == [(1, 0.75, 0.5, 0.25, 0.125, True)]


def test_the_monitor_reads_its_events_from_the_history() -> None:
    monitor = StabilityMonitor()
    monitor.history.record_exact(exact_check(2, Comparison(event=True), margin_pass(), 0.3625, 0.75))
    monitor.history.record_exact(exact_check(4, Comparison(event=True), margin_pass(), 0.3, 0.5))
    for _ in range(3):
        monitor.stop_rule.update(True)
    assert monitor.instability_count == 2
    assert monitor.instability_epochs == [2, 4]
    assert monitor.state_dict()["stop_rule"] == {"consecutive": 3}
    previous = monitor.history.previous
    assert previous.loss == 0.3 and previous.accuracy == 0.5
    assert torch.equal(previous.margins, MARGINS)


def test_legacy_keys_write_the_parts() -> None:
    monitor = StabilityMonitor(patience=3, stop_on_instability=True)
    old = legacy(monitor.state_dict())
    old.update(
        instability_count=5,
        instability_epochs=[0, 3],
        consecutive_instabilities=2,
        previous={"indices": INDICES, "margins": MARGINS, "loss": 1.25, "accuracy": 0.5},
    )
    monitor.load_state_dict(old)
    assert (monitor.history.count, monitor.history.epochs, monitor.stop_rule.consecutive) == (5, [0, 3], 2)
    assert monitor.history.previous == PreviousCheck(1.25, 0.5, INDICES, MARGINS)
    # the stop rule counts on from the restored value: 2 + 1 = 3 >= patience 3 stops
    assert monitor.stop_rule.update(True) is True


def test_the_statistics_travel_in_the_state() -> None:
    monitor = StabilityMonitor()
    monitor.statistics.update(INDICES, TARGETS, MARGINS, LOSSES, PREDICTED)
    state = monitor.state_dict()["statistics"]
    assert state["checks"] == 1 and torch.equal(state["last_margin"], MARGINS)
    for layout in (monitor.state_dict(), legacy(monitor.state_dict())):
        fresh = StabilityMonitor()
        fresh.load_state_dict(layout)
        assert fresh.statistics.checks == 1
        result = fresh.statistics.result()
        assert result.index.tolist() == [0, 1, 2, 3]
        assert result.last_margin.tolist() == [1.5, -0.5, 2.0, 0.25]
        # a second check where sample 0 turns wrong: forgotten once (the state carried its correctness)
        forgotten = fresh.statistics.update(
            INDICES, TARGETS, torch.tensor([-1.0, -0.5, 2.0, 0.25], dtype=torch.float64), LOSSES, PREDICTED
        )
        assert forgotten.tolist() == [0]


def test_the_subset_state_is_the_draw_and_the_subset_history() -> None:
    monitor = StabilityMonitor(subset_size=3)
    monitor.draw.load_state_dict({"indices": torch.tensor([1, 3]), "counts": torch.tensor([2, 1])})
    monitor.history.record_subset(subset_check(Comparison(event=True), 0.5, 0.625))
    state = monitor.state_dict()
    assert state["draw"]["indices"].tolist() == [1, 3] and state["draw"]["counts"].tolist() == [2, 1]
    assert state["history"]["subset_previous"] == {"loss": 0.5, "accuracy": 0.625}
    assert state["history"]["subset_instability_count"] == 1
    old = legacy(state)
    assert old["subset_state"]["previous"] == {"loss": 0.5, "accuracy": 0.625}

    for layout in (state, old):
        fresh = StabilityMonitor(subset_size=3)
        fresh.load_state_dict(layout)
        assert fresh.draw.indices.tolist() == [1, 3] and fresh.draw.counts.tolist() == [2, 1]
        assert fresh.history.subset_previous == PreviousCheck(0.5, 0.625) and fresh.history.subset_count == 1

    fresh.load_state_dict({**old, "subset_state": None})  # a checkpoint before the draw resets it
    assert fresh.draw.indices is None and fresh.draw.counts is None
    assert fresh.history.subset_previous is None and fresh.history.subset_count == 0


def filled_monitor() -> StabilityMonitor:
    monitor = StabilityMonitor(subset_size=3, sample_history=True)
    monitor.history.record_exact(exact_check(1, Comparison(event=True), margin_pass(), 0.3625, 0.5))
    monitor.stop_rule.update(True)
    monitor.statistics.update(INDICES, TARGETS, MARGINS, LOSSES, PREDICTED)
    monitor.draw.load_state_dict({"indices": torch.tensor([0, 2]), "counts": torch.tensor([1, 2])})
    monitor.history.record_subset(subset_check(Comparison(event=False), 0.25, 0.75))
    monitor.checks_done, monitor.stop_reason, monitor.last_checked_epoch = 3, "two events", 1
    return monitor


def assert_restored(fresh: StabilityMonitor) -> None:
    assert (fresh.checks_done, fresh.stop_reason, fresh.last_checked_epoch) == (3, "two events", 1)
    assert (fresh.history.count, fresh.history.epochs, fresh.stop_rule.consecutive) == (1, [1], 1)
    previous = fresh.history.previous
    assert previous.loss == 0.3625 and previous.accuracy == 0.5
    assert previous.indices.tolist() == [0, 1, 2, 3]
    assert previous.margins.tolist() == [1.5, -0.5, 2.0, 0.25]
    assert fresh.statistics.checks == 1
    assert fresh.statistics.result().last_margin.tolist() == [1.5, -0.5, 2.0, 0.25]
    assert len(fresh.statistics.history) == 1 and fresh.statistics.history[0][1].tolist() == [1.5, -0.5, 2.0, 0.25]
    assert fresh.draw.indices.tolist() == [0, 2] and fresh.draw.counts.tolist() == [1, 2]
    assert fresh.history.subset_previous == PreviousCheck(0.25, 0.75) and fresh.history.subset_count == 0


def test_round_trip_into_a_fresh_monitor_from_either_layout() -> None:
    for layout in (filled_monitor().state_dict(), legacy(filled_monitor().state_dict())):
        fresh = StabilityMonitor(subset_size=3, sample_history=True)
        fresh.load_state_dict(layout)
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
    assert (fresh.checks_done, fresh.instability_count, fresh.stop_rule.consecutive) == (0, 0, 0)
    assert fresh.history.previous is None and fresh.draw.indices is None and fresh.statistics.checks == 0


def test_state_dict_is_a_copy_of_the_statistics() -> None:
    monitor = filled_monitor()
    state = monitor.state_dict()
    monitor.statistics.update(INDICES, TARGETS, -MARGINS, LOSSES, PREDICTED)
    assert state["statistics"]["checks"] == 1
    assert state["statistics"]["last_margin"].tolist() == [1.5, -0.5, 2.0, 0.25]


def test_upgraded_state_leaves_the_current_layout_alone() -> None:
    state = filled_monitor().state_dict()
    assert upgraded_state(state) is state


def test_the_checkpoint_of_release_0_1_0_loads_with_every_value() -> None:
    """``fixtures/stability_v0_1_0.ckpt`` was written by release 0.1.0 (fixtures/make_stability_checkpoint.py);
    ``.json`` holds the values its monitor had."""
    expected = json.loads((FIXTURES / "stability_v0_1_0.json").read_text())
    checkpoint = torch.load(FIXTURES / "stability_v0_1_0.ckpt", weights_only=False)
    monitor = StabilityMonitor(tol=0.0, subset_size=24, full_every_n_epochs=2, subset_seed=3)
    assert monitor.state_key == expected["state_key"]
    monitor.load_state_dict(checkpoint["callbacks"][monitor.state_key])
    assert (monitor.checks_done, monitor.last_checked_epoch) == (
        expected["checks_done"],
        expected["last_checked_epoch"],
    )
    assert monitor.instability_count == expected["instability_count"] == 1
    assert monitor.instability_epochs == expected["instability_epochs"]
    assert monitor.stop_rule.consecutive == expected["consecutive_instabilities"]
    previous = monitor.history.previous
    assert (previous.loss, previous.accuracy) == (expected["previous_loss"], expected["previous_accuracy"])
    assert [list(check) for check in monitor.check_series] == expected["check_series"]
    assert monitor.draw.indices.tolist() == expected["subset_indices"]
    assert monitor.history.subset_count == expected["subset_count"]
    assert monitor.history.subset_previous == PreviousCheck(**expected["subset_previous"])
    assert monitor.sample_dynamics().checks.tolist() == expected["samples_checks"]
    assert monitor.sample_dynamics().aum.tolist() == expected["samples_aum"]
