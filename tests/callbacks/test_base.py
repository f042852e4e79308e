"""The monitors' shared base (callbacks/base.py): the epoch schedule's validation, the checkpoint state and the stop
decision, alike for every monitor."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException

from lightning_stability import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor, StabilityMonitor
from lightning_stability.callbacks.base import EpochMonitor

from ..helpers import all_monitors, fit

EPOCH_MONITORS = (StabilityMonitor, SharpnessMonitor, ParametrizationMonitor)
MONITORS = (*EPOCH_MONITORS, GradientFlowMonitor)


@pytest.mark.parametrize("value", [True, 0, -1, 1.5], ids=["True", "0", "-1", "1.5"])
@pytest.mark.parametrize("monitor", EPOCH_MONITORS, ids=lambda cls: cls.__name__)
def test_every_n_epochs_must_be_a_positive_integer(monitor: type[EpochMonitor], value: Any) -> None:
    with pytest.raises(MisconfigurationException, match=r"`every_n_epochs` must be a positive integer") as error:
        monitor(every_n_epochs=value)
    assert str(error.value).startswith(f"{monitor.__name__}: ") and f"got {value!r}" in str(error.value)


@pytest.mark.parametrize("monitor", EPOCH_MONITORS, ids=lambda cls: cls.__name__)
def test_every_n_epochs_schedules_the_checks(monitor: type[EpochMonitor]) -> None:
    every_third = monitor(every_n_epochs=3)
    assert every_third.every_n_epochs == 3
    assert [epoch for epoch in range(9) if every_third.is_check_epoch(epoch)] == [2, 5, 8]
    assert all(monitor().is_check_epoch(epoch) for epoch in range(4))  # default: every epoch


# a value for every attribute any monitor keeps in checkpoints, none of them a default
SAVED_VALUES: dict[str, Any] = {
    "checks_done": 7,
    "stop_reason": "stopped for a test",
    "last_checked_epoch": 4,
    "instability_count": 3,
    "consecutive_instabilities": 2,
    "instability_epochs": [3, 7, 8],
    "check_series": [(-1, 0.5, 0.0, 0.0, 0.0, False), (0, 0.75, 0.25, 0.125, 0.0625, True)],
    "previous": {
        "indices": torch.arange(5),
        "margins": torch.tensor([0.5, -1.0, 2.0, 0.0, 3.5], dtype=torch.float64),
        "loss": 0.25,
        "accuracy": 0.8,
    },
    "unstable_count": 5,
    "consecutive_unstable": 2,
    "indices": torch.tensor([4, 0, 9]),
    "last_logged_step": 16,
    "previous_loss": 0.375,
    "warm_start": torch.tensor([0.5, -0.25, 0.125], dtype=torch.float64),
    "edge_warm_start": torch.tensor([0.0, 1.0], dtype=torch.float64),
    "sample_state": {  # SampleStatistics.state_dict of two samples after two checks
        "target": torch.tensor([1, 0]),
        "seen": torch.tensor([2, 1]),
        "correct_count": torch.tensor([1, 1]),
        "forgetting": torch.tensor([1, 0]),
        "learned_since": torch.tensor([-1, 1]),
        "margin_mean": torch.tensor([0.25, 1.5], dtype=torch.float64),
        "confidence_mean": torch.tensor([0.5, 0.75], dtype=torch.float64),
        "confidence_m2": torch.tensor([0.02, 0.0], dtype=torch.float64),
        "last_margin": torch.tensor([-0.5, 1.5], dtype=torch.float64),
        "predicted": torch.tensor([0, 0]),
        "checks": 2,
        "keep_history": False,
        "history": [],
    },
    "subset_state": {
        "indices": torch.tensor([2, 5, 9]),
        "counts": torch.tensor([1, 3, 1]),
        "previous": {"loss": 0.5, "accuracy": 0.75},
        "instability_count": 2,
    },
}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("monitor", [m for m in MONITORS if m is not StabilityMonitor], ids=lambda cls: cls.__name__)
def test_load_state_dict_restores_every_checkpoint_attribute(monitor: type) -> None:
    keys = monitor.checkpoint_state
    assert {"checks_done", "stop_reason"} <= set(keys)
    assert set(keys) <= set(SAVED_VALUES), f"give SAVED_VALUES the new attributes {set(keys) - set(SAVED_VALUES)}"
    original = monitor()
    for key in keys:
        setattr(original, key, SAVED_VALUES[key])
    state = original.state_dict()
    assert list(state) == list(keys)
    buffer = io.BytesIO()
    torch.save(state, buffer)  # as in a checkpoint file: plain data only
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)

    restored = monitor()
    assert not any(same(getattr(restored, key), SAVED_VALUES[key]) for key in keys), "the defaults must differ"
    restored.load_state_dict(loaded)
    for key in keys:
        assert same(getattr(restored, key), SAVED_VALUES[key]), key
    assert same(restored.state_dict(), state)

    # a checkpoint without some of the attributes (an older version) restores the others and keeps the defaults
    partial = monitor()
    partial.load_state_dict({"checks_done": 3})
    assert partial.checks_done == 3
    assert all(same(getattr(partial, key), getattr(monitor(), key)) for key in keys if key != "checks_done")


STABILITY_LEGACY_KEYS = (
    "checks_done",
    "stop_reason",
    "last_checked_epoch",
    "instability_count",
    "consecutive_instabilities",
    "instability_epochs",
    "check_series",
    "previous",
    "sample_state",
    "subset_state",
)


def stability_values(monitor: StabilityMonitor) -> dict[str, Any]:
    """The StabilityMonitor's checkpoint values under release 0.1.0's flat keys, read from its parts."""
    history, draw = monitor.history, monitor.draw
    subset = history.subset_previous
    return {
        "checks_done": monitor.checks_done,
        "stop_reason": monitor.stop_reason,
        "last_checked_epoch": monitor.last_checked_epoch,
        "instability_count": history.count,
        "consecutive_instabilities": monitor.stop_rule.consecutive,
        "instability_epochs": history.epochs,
        "check_series": history.checks,
        "previous": None if history.previous is None else history.previous.as_dict(),
        "sample_state": monitor.statistics.state_dict(),
        "subset_state": None
        if draw.indices is None
        else {
            "indices": draw.indices,
            "counts": draw.counts,
            "previous": None if subset is None else subset.as_dict(),
            "instability_count": history.subset_count,
        },
    }


def test_the_stability_monitor_restores_every_value_of_a_checkpoint() -> None:
    """The StabilityMonitor composes its state of its parts' (callbacks/stability.py): a checkpoint holding every
    value of `SAVED_VALUES` under release 0.1.0's keys restores each, survives a save as plain data, and a partial
    one keeps the defaults of the rest."""
    saved = {key: SAVED_VALUES[key] for key in STABILITY_LEGACY_KEYS}
    restored = StabilityMonitor()
    defaults = stability_values(StabilityMonitor())
    assert not any(same(defaults[key], saved[key]) for key in saved), "the defaults must differ"
    restored.load_state_dict(saved)
    for key, value in stability_values(restored).items():
        expected = [tuple(c) for c in saved[key]] if key == "check_series" else saved[key]
        assert same(value, expected) if key != "check_series" else value == expected, key
    state = restored.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)  # as in a checkpoint file: plain data only
    buffer.seek(0)
    again = StabilityMonitor()
    again.load_state_dict(torch.load(buffer, weights_only=True))
    assert same(again.state_dict()["statistics"], state["statistics"])
    assert stability_values(again)["instability_epochs"] == [3, 7, 8]

    partial = StabilityMonitor()
    partial.load_state_dict({"checks_done": 3})
    assert partial.checks_done == 3
    assert all(same(v, defaults[k]) for k, v in stability_values(partial).items() if k not in ("checks_done",)), (
        "a partial checkpoint keeps the defaults"
    )


def test_state_dict_round_trip() -> None:
    for monitor in all_monitors():
        monitor.checks_done, monitor.last_checked_epoch = 7, 4
        if isinstance(monitor, SharpnessMonitor):
            monitor.consecutive_unstable, monitor.unstable_count, monitor.stop_reason = 2, 5, "why"
        fresh = type(monitor)()
        fresh.load_state_dict(monitor.state_dict())
        assert fresh.state_dict() == monitor.state_dict()
    assert SharpnessMonitor().state_key != SharpnessMonitor(num_samples=10).state_key
    assert GradientFlowMonitor().state_key != GradientFlowMonitor(every_n_steps=2).state_key


class StopAt(EpochMonitor):
    """Checks after every epoch and asks to stop at the check of ``stop_epoch``; records every decision."""

    def __init__(self, stop_epoch: int | None) -> None:
        super().__init__()
        self.stop_epoch = stop_epoch
        self.decisions: list[tuple[int, bool, bool]] = []

    def run_check(self, trainer, pl_module, epoch: int, in_epoch_end: bool) -> None:
        stop = epoch == self.stop_epoch
        decided = self.decide_stop(trainer, stop, f"asked at epoch {epoch}" if stop else None)
        self.decisions.append((epoch, decided, trainer.should_stop))
        self.finish_check({}, epoch)


def test_decide_stop_sets_trainer_should_stop(caplog) -> None:
    monitor = StopAt(stop_epoch=1)
    with caplog.at_level(logging.INFO):
        trainer = fit([monitor], data=64, max_epochs=5)
    assert monitor.decisions == [(0, False, False), (1, True, True)]
    assert trainer.should_stop and trainer.current_epoch == 2, "training must stop right after the stopping check"
    assert monitor.stop_reason == "asked at epoch 1" and monitor.checks_done == 2
    assert "[StopAt] stopping training: asked at epoch 1" in caplog.text

    # a monitor that never asks leaves the trainer alone
    never = StopAt(stop_epoch=None)
    trainer = fit([never], data=64, max_epochs=3)
    assert never.decisions == [(0, False, False), (1, False, False), (2, False, False)]
    assert not trainer.should_stop and never.stop_reason is None
