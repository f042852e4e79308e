"""The previous check, the comparison with it and the instability history (lightning_stability/assess/history.py)."""

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from lightning_stability import theory
from lightning_stability.assess import (
    CheckSettings,
    Comparison,
    ExactCheck,
    InstabilityHistory,
    PreviousCheck,
    SubsetCheck,
    assess_exact,
    assess_subset,
    compare_checks,
)
from lightning_stability.records import MarginPass

OLD_CHECKPOINT = Path(__file__).resolve().parents[1] / "callbacks" / "fixtures" / "stability_v0_1_0.ckpt"
SETTINGS = CheckSettings(tol=0.0, grid={}, quantiles=(0.5,), confidence=0.9, blame_size=2)


def pass_of(margins: list[float], indices: list[int] | None = None) -> MarginPass:
    n = len(margins)
    values = torch.tensor(margins, dtype=torch.float64)
    return MarginPass(
        indices=torch.tensor(indices if indices is not None else list(range(n))),
        targets=torch.zeros(n, dtype=torch.long),
        margins=values,
        losses=values.abs(),
        predicted=torch.zeros(n, dtype=torch.long),
        num_classes=2,
    )


def exact_check(
    epoch: int, comparison: Comparison, margin_pass: MarginPass, loss: float, accuracy: float
) -> ExactCheck:
    """An exact check of ``margin_pass`` with the given comparison, loss and accuracy (the rest as assessed)."""
    assessed = assess_exact(
        margin_pass,
        None,
        SETTINGS,
        epoch=epoch,
        previous=None,
        instability_count=0,
        checks_done=0,
        forgotten=torch.zeros(0, dtype=torch.long),
    )
    report = dataclasses.replace(assessed.report, accuracy=accuracy)
    return dataclasses.replace(assessed, comparison=comparison, loss=loss, report=report)


def subset_check(comparison: Comparison, loss: float, accuracy: float) -> SubsetCheck:
    margin_pass = pass_of([1.0, -1.0, 2.0, 0.5])
    assessed = assess_subset(
        margin_pass, torch.tensor([1, 2, 1, 1]), SETTINGS, epoch=0, previous=None, instability_count=0
    )
    estimate = dataclasses.replace(assessed.estimate, accuracy=accuracy)
    return dataclasses.replace(assessed, comparison=comparison, loss=loss, estimate=estimate)


def test_first_check_is_no_event() -> None:
    assert compare_checks(None, 0.5, 0.9, 0.0) == Comparison()


def test_event_when_loss_and_accuracy_fall_beyond_tol_with_the_theory_s_rule() -> None:
    previous = PreviousCheck(0.5, 0.9)
    for loss, accuracy, tol in [(0.4, 0.8, 0.0), (0.4, 0.85, 0.1), (0.6, 0.8, 0.0), (0.4, 0.95, 0.0)]:
        found = compare_checks(previous, loss, accuracy, tol)
        assert found.event == theory.instability_event(0.5, 0.9, loss, accuracy, tol)
        assert found.loss_rose == theory.loss_rose(0.5, loss)
        assert (found.previous_loss, found.previous_accuracy) == (0.5, 0.9)
        assert math.isnan(found.flip_forgotten)  # no margins given


def test_flip_masses_on_the_same_samples_and_none_when_they_changed() -> None:
    before, after = pass_of([1.0, -1.0, 2.0, -0.5]), pass_of([-1.0, 1.0, 2.0, -0.5])
    previous = PreviousCheck(1.0, 0.5, before.indices, before.margins)
    found = compare_checks(previous, 0.9, 0.5, 0.0, after)
    assert (found.flip_forgotten, found.flip_learned) == theory.flip_masses(before.margins, after.margins, None)
    assert not found.samples_changed
    moved = compare_checks(previous, 0.9, 0.5, 0.0, pass_of([1.0, 1.0, 1.0, 1.0], [0, 1, 2, 5]))
    assert moved.samples_changed and math.isnan(moved.flip_forgotten)
    subset = compare_checks(PreviousCheck(1.0, 0.5), 0.9, 0.5, 0.0, after)  # a subset check: no margins kept
    assert not subset.samples_changed and math.isnan(subset.flip_forgotten)


def test_a_previous_check_is_the_checkpoint_dict_of_its_kind() -> None:
    indices, margins = torch.tensor([0, 2]), torch.tensor([0.5, -1.0], dtype=torch.float64)
    exact = PreviousCheck(0.25, 0.5, indices, margins)
    state = exact.as_dict()
    assert list(state) == ["indices", "margins", "loss", "accuracy"]
    assert (
        state["indices"] is indices
        and state["margins"] is margins
        and (state["loss"], state["accuracy"]) == (0.25, 0.5)
    )
    assert PreviousCheck.from_dict(state) == exact
    assert PreviousCheck(0.25, 0.5).as_dict() == {"loss": 0.25, "accuracy": 0.5}
    assert list(PreviousCheck(0.25, 0.5).as_dict()) == ["loss", "accuracy"]
    assert PreviousCheck.from_dict({"loss": 0.25, "accuracy": 0.5}) == PreviousCheck(0.25, 0.5)
    assert exact != PreviousCheck(0.25, 0.5, indices, margins + 1) and exact != PreviousCheck(0.25, 0.5)
    with pytest.raises(ValueError, match="both"):
        PreviousCheck(0.25, 0.5, indices)
    with pytest.raises(dataclasses.FrozenInstanceError):
        exact.loss = 0.0  # type: ignore[misc]


def test_history_counts_events_keeps_copies_and_round_trips() -> None:
    history = InstabilityHistory()
    margin_pass = pass_of([1.0, -1.0])
    history.record_exact(exact_check(3, Comparison(event=True), margin_pass, 0.4, 0.5))
    history.record_exact(exact_check(4, Comparison(), margin_pass, 0.3, 0.5))
    history.record_subset(subset_check(Comparison(event=True), 0.2, 0.75))
    assert (history.count, history.epochs, history.subset_count) == (1, [3], 1)
    assert history.previous is not None and history.previous.loss == 0.3
    assert history.previous.margins is not margin_pass.margins  # a copy: the pass may be reused
    assert history.previous.indices is not margin_pass.indices
    fresh = InstabilityHistory()
    fresh.load_state_dict(history.state_dict())
    assert fresh.state_dict().keys() == history.state_dict().keys()
    assert (fresh.count, fresh.epochs, fresh.subset_previous) == (1, [3], PreviousCheck(0.2, 0.75))
    assert fresh.previous == history.previous


def test_history_records_what_the_monitor_recorded_before() -> None:
    """The values `record_exact(epoch, comparison, pass, loss, accuracy, floors)` and `record_subset(comparison,
    loss, accuracy)` recorded, now read from the results."""
    history = InstabilityHistory()
    margin_pass = pass_of([1.0, -1.0, 0.5])
    first = exact_check(2, Comparison(event=True), margin_pass, 0.4, 0.5)
    history.record_exact(first)
    assert history.checks == [(2, 0.5, *first.floors, True)]
    assert first.floors == (first.report.loss_floor, first.report.theorem_a.floor, first.report.theorem_b.floor)
    state = history.state_dict()
    assert list(state) == [
        "instability_count",
        "instability_epochs",
        "previous",
        "subset_previous",
        "subset_instability_count",
        "checks",
    ]
    assert list(state["previous"]) == ["indices", "margins", "loss", "accuracy"]
    assert torch.equal(state["previous"]["indices"], margin_pass.indices)
    assert torch.equal(state["previous"]["margins"], margin_pass.margins)
    assert (state["previous"]["loss"], state["previous"]["accuracy"]) == (0.4, 0.5)
    assert state["subset_previous"] is None and state["subset_instability_count"] == 0
    history.record_subset(subset_check(Comparison(), 0.2, 0.75))
    assert history.state_dict()["subset_previous"] == {"loss": 0.2, "accuracy": 0.75}
    assert history.subset_count == 0


def test_a_checkpoint_of_release_0_1_0_loads_and_is_written_back_identically() -> None:
    (monitor,) = torch.load(OLD_CHECKPOINT, weights_only=True)["callbacks"].values()
    state = {
        "instability_count": monitor["instability_count"],
        "instability_epochs": monitor["instability_epochs"],
        "previous": monitor["previous"],
        "subset_previous": monitor["subset_state"]["previous"],
        "subset_instability_count": monitor["subset_state"]["instability_count"],
        "checks": monitor["check_series"],
    }
    history = InstabilityHistory()
    history.load_state_dict(state)
    assert history.previous is not None and history.previous.indices is not None
    assert history.subset_previous == PreviousCheck(**monitor["subset_state"]["previous"])
    written = history.state_dict()
    assert list(written["previous"]) == list(state["previous"]) == ["indices", "margins", "loss", "accuracy"]
    assert all(written["previous"][key] is state["previous"][key] for key in state["previous"])
    assert written["subset_previous"] == state["subset_previous"] and list(written["subset_previous"]) == [
        "loss",
        "accuracy",
    ]
    empty = InstabilityHistory()
    empty.load_state_dict({**state, "previous": None, "subset_previous": None})
    assert empty.previous is None and empty.subset_previous is None
    assert empty.state_dict()["previous"] is None and empty.state_dict()["subset_previous"] is None
