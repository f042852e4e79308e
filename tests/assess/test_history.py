"""The comparison with the previous check and the instability history (lightning_stability/assess/history.py)."""

import math

import torch

from lightning_stability import theory
from lightning_stability.assess import Comparison, InstabilityHistory, compare_checks
from lightning_stability.records import MarginPass


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


def test_first_check_is_no_event() -> None:
    assert compare_checks(None, 0.5, 0.9, 0.0) == Comparison()


def test_event_when_loss_and_accuracy_fall_beyond_tol_with_the_theory_s_rule() -> None:
    previous = {"loss": 0.5, "accuracy": 0.9}
    for loss, accuracy, tol in [(0.4, 0.8, 0.0), (0.4, 0.85, 0.1), (0.6, 0.8, 0.0), (0.4, 0.95, 0.0)]:
        found = compare_checks(previous, loss, accuracy, tol)
        assert found.event == theory.instability_event(0.5, 0.9, loss, accuracy, tol)
        assert found.loss_rose == theory.loss_rose(0.5, loss)
        assert (found.previous_loss, found.previous_accuracy) == (0.5, 0.9)
        assert math.isnan(found.flip_forgotten)  # no margins given


def test_flip_masses_on_the_same_samples_and_none_when_they_changed() -> None:
    before, after = pass_of([1.0, -1.0, 2.0, -0.5]), pass_of([-1.0, 1.0, 2.0, -0.5])
    previous = {"loss": 1.0, "accuracy": 0.5, "indices": before.indices, "margins": before.margins}
    found = compare_checks(previous, 0.9, 0.5, 0.0, after)
    assert (found.flip_forgotten, found.flip_learned) == theory.flip_masses(before.margins, after.margins, None)
    assert not found.samples_changed
    moved = compare_checks(previous, 0.9, 0.5, 0.0, pass_of([1.0, 1.0, 1.0, 1.0], [0, 1, 2, 5]))
    assert moved.samples_changed and math.isnan(moved.flip_forgotten)


def test_history_counts_events_keeps_copies_and_round_trips() -> None:
    history = InstabilityHistory()
    margin_pass = pass_of([1.0, -1.0])
    history.record_exact(3, Comparison(event=True), margin_pass, 0.4, 0.5)
    history.record_exact(4, Comparison(), margin_pass, 0.3, 0.5)
    history.record_subset(Comparison(event=True), 0.2, 0.75)
    assert (history.count, history.epochs, history.subset_count) == (1, [3], 1)
    assert history.previous is not None and history.previous["loss"] == 0.3
    assert history.previous["margins"] is not margin_pass.margins  # a copy: the pass may be reused
    fresh = InstabilityHistory()
    fresh.load_state_dict(history.state_dict())
    assert fresh.state_dict().keys() == history.state_dict().keys()
    assert (fresh.count, fresh.epochs, fresh.subset_previous) == (1, [3], {"loss": 0.2, "accuracy": 0.75})
