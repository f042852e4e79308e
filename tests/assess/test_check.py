"""The one assess function for exact and subset checks (lightning_stability/assess/check.py)."""

import pytest
import torch

from lightning_stability import theory
from lightning_stability.assess import CheckSettings, assess_check, sample_weights
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
    result = assess_check(
        margin_pass,
        None,
        SETTINGS,
        epoch=2,
        exact=True,
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


def test_an_exact_event_counts_and_picks_the_blame_sets() -> None:
    margin_pass = random_pass()
    previous = {"loss": 10.0, "accuracy": 1.0, "indices": margin_pass.indices, "margins": margin_pass.margins + 5}
    result = assess_check(
        margin_pass,
        None,
        SETTINGS,
        epoch=5,
        exact=True,
        previous=previous,
        instability_count=2,
        checks_done=6,
        forgotten=torch.tensor([4, 8]),
    )
    assert result.comparison.event and result.instability_count == 3
    assert result.metrics["stability/instability_count"] == 3.0
    assert result.blame is not None and result.blame.worst.numel() == 3
    assert torch.equal(result.blame.forgotten, torch.tensor([4, 8]))


def test_subset_check_weighs_by_draw_counts_and_logs_estimates() -> None:
    margin_pass = random_pass(50)
    counts = torch.randint(1, 4, (50,), generator=torch.Generator().manual_seed(1))
    result = assess_check(
        margin_pass,
        None,
        SETTINGS,
        epoch=1,
        exact=False,
        previous={"loss": 0.0, "accuracy": 0.0},
        instability_count=0,
        checks_done=1,
        forgotten=torch.zeros(0, dtype=torch.long),
        draw_counts=counts,
    )
    estimate = theory.subset_estimate(margin_pass.margins, counts, confidence=0.9, levels=(0.05, 0.5))
    assert result.estimate == estimate and not result.exact
    assert result.metrics["stability_estimate/accuracy"] == estimate.accuracy
    assert not any(name.startswith("stability/") for name in result.metrics)
    assert result.metrics["stability_estimate/loss"] == pytest.approx(
        float((counts * margin_pass.losses).sum() / counts.sum()), rel=1e-14
    )
    with pytest.raises(ValueError, match="draw counts"):
        assess_check(
            margin_pass,
            None,
            SETTINGS,
            epoch=1,
            exact=False,
            previous=None,
            instability_count=0,
            checks_done=0,
            forgotten=torch.zeros(0, dtype=torch.long),
        )


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
