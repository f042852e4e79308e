"""The two assess functions, `assess_exact` and `assess_subset` (lightning_stability/assess/check.py)."""

import dataclasses

import pytest
import torch

from lightning_stability import theory
from lightning_stability.assess import (
    CheckSettings,
    ExactCheck,
    PreviousCheck,
    SubsetCheck,
    assess_exact,
    assess_subset,
    sample_weights,
)
from lightning_stability.records import MarginPass

SETTINGS = CheckSettings(tol=0.0, grid={}, quantiles=(0.05, 0.5), confidence=0.9, blame_size=3)


def random_pass(n: int = 200, seed: int = 0) -> MarginPass:
    generator = torch.Generator().manual_seed(seed)
    margins = torch.randn(n, generator=generator, dtype=torch.float64) + 1.0
    return MarginPass(
        indices=torch.arange(n) * 2,
        targets=torch.randint(0, 3, (n,), generator=generator),
        margins=margins,
        losses=torch.nn.functional.softplus(-margins),
        predicted=torch.zeros(n, dtype=torch.long),
        num_classes=3,
    )


def test_exact_check_is_certify_on_the_pass_with_its_loss() -> None:
    margin_pass = random_pass()
    result = assess_exact(
        margin_pass,
        None,
        SETTINGS,
        epoch=2,
        previous=None,
        instability_count=0,
        checks_done=4,
        forgotten=torch.zeros(0, dtype=torch.long),
    )
    loss = float(margin_pass.losses.mean())
    assert result.loss == pytest.approx(loss, rel=1e-15)
    expected = theory.certify(margin_pass.margins, 3, loss=result.loss)
    assert result.report.to_dict() == expected.to_dict()
    assert result.metrics["stability/accuracy"] == expected.accuracy
    assert (
        result.metrics["stability_events/stable_checks"] == 5.0
        and result.metrics["stability_events/instability"] == 0.0
    )
    assert "stability_diagnostics/check_epoch" in result.metrics and "stability/num_samples" not in result.metrics
    assert result.blame is None  # no event, not asked for
    assert isinstance(result, ExactCheck) and result.exact
    assert result.accuracy == expected.accuracy
    assert result.floors == (expected.loss_floor, expected.theorem_a.floor, expected.theorem_b.floor)


def test_an_exact_event_counts_and_picks_the_blame_sets() -> None:
    margin_pass = random_pass()
    previous = PreviousCheck(10.0, 1.0, margin_pass.indices, margin_pass.margins + 5)
    result = assess_exact(
        margin_pass,
        None,
        SETTINGS,
        epoch=5,
        previous=previous,
        instability_count=2,
        checks_done=6,
        forgotten=torch.tensor([4, 8]),
    )
    assert result.comparison.event and result.instability_count == 3
    assert result.metrics["stability/instability_count"] == 3.0
    assert result.blame is not None and result.blame.worst.numel() == 3
    assert torch.equal(result.blame.forgotten, torch.tensor([4, 8]))


def test_an_exact_check_as_the_previous_one_keeps_copies_of_its_pass() -> None:
    margin_pass = random_pass(20)
    result = assess_exact(
        margin_pass,
        None,
        SETTINGS,
        epoch=0,
        previous=None,
        instability_count=0,
        checks_done=0,
        forgotten=torch.zeros(0, dtype=torch.long),
    )
    previous = result.as_previous()
    assert previous == PreviousCheck(result.loss, result.report.accuracy, margin_pass.indices, margin_pass.margins)
    assert previous.indices is not margin_pass.indices and previous.margins is not margin_pass.margins
    assert list(previous.as_dict()) == ["indices", "margins", "loss", "accuracy"]


def test_subset_check_weighs_by_draw_counts_and_logs_estimates() -> None:
    margin_pass = random_pass(50)
    counts = torch.randint(1, 4, (50,), generator=torch.Generator().manual_seed(1))
    result = assess_subset(
        margin_pass, counts, SETTINGS, epoch=1, previous=PreviousCheck(0.0, 0.0), instability_count=0
    )
    estimate = theory.subset_estimate(margin_pass.margins, counts, confidence=0.9, levels=(0.05, 0.5))
    assert result.estimate == estimate and not result.exact
    assert result.metrics["stability_estimate/accuracy"] == estimate.accuracy
    assert not any(name.startswith("stability/") for name in result.metrics)
    assert result.metrics["stability_estimate/loss"] == pytest.approx(
        float((counts * margin_pass.losses).sum() / counts.sum()), rel=1e-14
    )
    assert isinstance(result, SubsetCheck) and result.accuracy == estimate.accuracy
    assert torch.allclose(result.mu, counts.double() / counts.sum(), rtol=1e-15, atol=0)
    assert result.as_previous() == PreviousCheck(result.loss, estimate.accuracy)
    assert result.as_previous().as_dict() == {"loss": result.loss, "accuracy": estimate.accuracy}
    with pytest.raises(ValueError, match="draw counts"):
        assess_subset(margin_pass, counts[1:], SETTINGS, epoch=1, previous=None, instability_count=0)


def test_the_results_carry_only_their_own_fields_and_say_which_they_are() -> None:
    assert ExactCheck.exact is True and SubsetCheck.exact is False
    exact = {field.name for field in dataclasses.fields(ExactCheck)}
    subset = {field.name for field in dataclasses.fields(SubsetCheck)}
    assert "exact" not in exact | subset  # a class constant, not a field
    assert exact - subset == {"weights", "forgotten", "blame"}
    assert subset - exact == {"estimate"}


def test_sample_weights_of_the_options() -> None:
    margin_pass = random_pass(6)
    assert sample_weights("uniform", margin_pass, False) is None
    balanced = sample_weights("balanced", margin_pass, False)
    assert balanced is not None
    counts = torch.bincount(margin_pass.targets, minlength=3).double()
    assert torch.equal(balanced, 1.0 / counts[margin_pass.targets])
    user = torch.arange(12, dtype=torch.float32)
    picked = sample_weights(user, margin_pass, False)
    assert picked is not None and torch.equal(picked, user.double()[margin_pass.indices])
    with pytest.raises(ValueError, match="one weight per training sample"):
        sample_weights(torch.ones(5), margin_pass, False)
