"""The monitor's numbers are those of `theory.certify` on margins recomputed by hand; TensorBoard output."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from lightning_stability import StabilityMonitor, theory

from ..helpers import MLP, NUM_CLASSES, SMALL_GRID, Recorder, fit, hand_margin_pass, make_dataset, tensorboard_events

N = 400
TOL = 1e-9


def expected_metrics(
    margins: torch.Tensor,
    losses: torch.Tensor,
    weights: torch.Tensor | None,
    epoch: int,
    quantiles=(0.01, 0.05, 0.5),
    **grid,
) -> dict[str, float]:
    """What the monitor must log for a check, computed from the theory module alone."""
    mu = torch.full_like(losses, 1 / len(losses)) if weights is None else weights / weights.sum()
    loss = float((mu * losses).sum())
    report = theory.certify(margins, NUM_CLASSES, weights=weights, loss=loss, **grid)
    expected = {f"stability/{key}": value for key, value in report.to_dict().items()}
    expected["stability/num_classes"] = float(NUM_CLASSES)
    for level in quantiles:  # quantiles of the weighted F: the smallest margin with F(δ) ≥ q, by a plain loop
        pairs = sorted(zip(margins.tolist(), mu.tolist()))
        running = [sum(weight for _, weight in pairs[: k + 1]) for k in range(len(pairs))]
        first = next(k for k, mass in enumerate(running) if mass >= level * (1 - 1e-9))
        expected[f"stability/margin_quantile/q={level:g}"] = pairs[first][0]
    expected["stability/check_epoch"] = float(epoch)
    return expected


def assert_close(actual: dict[str, float], expected: dict[str, float], tol: float = TOL) -> None:
    missing = set(expected) - set(actual)
    assert not missing, f"metrics not logged: {sorted(missing)}"
    bad = {k: (float(actual[k]), v) for k, v in expected.items() if not math.isclose(float(actual[k]), v, abs_tol=tol)}
    assert not bad, f"metrics differ from theory.certify on hand-computed margins: {bad}"


def test_metrics_equal_certify_on_hand_computed_margins() -> None:
    """Default grid, one check after the only epoch: every logged number equals `theory.certify`'s.

    (`certify` with the default grid takes seconds on some margin sets: this is the one test that uses it.)
    """
    pl.seed_everything(4)
    dataset = make_dataset(300)
    model = MLP(lr=0.5)
    monitor = StabilityMonitor(check_at_start=False)
    trainer = fit([monitor], model, dataset, max_epochs=1)

    assert monitor.checks_done == 1 and monitor.last_checked_epoch == 0
    assert model.training, "the margin pass must restore train mode"
    targets, margins, losses = hand_margin_pass(model, dataset, batch_size=256)  # default: max(256, 4 × 32)
    assert torch.equal(monitor.last_pass.indices, torch.arange(300))
    assert torch.equal(monitor.last_pass.targets, targets)
    assert torch.equal(monitor.last_pass.margins, margins)
    assert torch.allclose(monitor.last_pass.losses, losses, rtol=0, atol=1e-12)

    expected = expected_metrics(margins, losses, None, epoch=0)
    expected.update({"stability/instability": 0.0, "stability/instability_count": 0.0, "stability/loss_rose": 0.0})
    assert set(monitor.last_metrics) == set(expected), "first check: no flip masses, nothing else"
    assert_close(monitor.last_metrics, expected)
    # what went through `pl_module.log` keeps full precision too
    assert_close({k: v for k, v in trainer.callback_metrics.items() if k.startswith("stability/")}, expected)


def test_flip_masses_events_and_saved_margin_files(tmp_path) -> None:
    """Start check + 2 epochs: flip masses and events against the previous check; one .pt file per check."""
    pl.seed_everything(1)
    dataset = make_dataset(N)
    model = MLP()
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=100, save_margins=tmp_path / "margins")
    recorder = Recorder(monitor)
    fit([monitor, recorder], model, dataset, max_epochs=2)

    files = sorted((tmp_path / "margins").glob("*.pt"))
    assert [f.name for f in files] == [
        "margins_epoch=0000_step=00000013.pt",
        "margins_epoch=0001_step=00000026.pt",
        "margins_epoch=start_step=00000000.pt",
    ]
    saved = [torch.load(f) for f in (files[2], files[0], files[1])]
    assert [r["hook"] for r in recorder.records] == ["train_start", "epoch_end", "epoch_end"]
    assert [s["epoch"] for s in saved] == [-1, 0, 1]
    for record, data in zip(recorder.records, saved, strict=True):
        assert torch.equal(data["margins"], record["margins"])
        assert torch.equal(data["indices"], torch.arange(N))
        assert data["num_classes"] == NUM_CLASSES
        report = {f"stability/{k}": v for k, v in data["report"].items()}
        assert_close(record["metrics"], report, tol=0.0)

    targets, margins, losses = hand_margin_pass(model, dataset, batch_size=100)
    assert torch.equal(saved[-1]["margins"], margins)
    assert torch.equal(saved[-1]["targets"], targets)
    assert_close(monitor.last_metrics, expected_metrics(margins, losses, None, epoch=1, **SMALL_GRID))

    for before, after in zip(recorder.records, recorder.records[1:]):
        forgotten, learned = theory.flip_masses(before["margins"], after["margins"])
        metrics, previous = after["metrics"], before["metrics"]
        assert metrics["stability/flip_forgotten"] == forgotten
        assert metrics["stability/flip_learned"] == learned
        event = theory.instability_event(
            previous["stability/loss"],
            previous["stability/accuracy"],
            metrics["stability/loss"],
            metrics["stability/accuracy"],
        )
        assert metrics["stability/instability"] == float(event)
        assert metrics["stability/loss_rose"] == float(metrics["stability/loss"] > previous["stability/loss"])
    assert "stability/flip_forgotten" not in recorder.records[0]["metrics"]
    # the model learns: the loss at the end is lower than at the start
    assert recorder.records[-1]["metrics"]["stability/loss"] < recorder.records[0]["metrics"]["stability/loss"]


@pytest.mark.parametrize("kind", ["balanced", "tensor"])
def test_weights_equal_certify_with_those_weights(kind: str) -> None:
    pl.seed_everything(2)
    dataset = make_dataset(N)
    targets_all = dataset.tensors[1]
    if kind == "balanced":
        weights_arg = "balanced"
        weights = 1.0 / torch.bincount(targets_all, minlength=NUM_CLASSES).to(torch.float64)[targets_all]
    else:
        weights = torch.rand(N, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.05
        weights[:20] = 0.0  # samples of weight zero carry no mass
        weights_arg = weights
    model = MLP()
    monitor = StabilityMonitor(grid=SMALL_GRID, weights=weights_arg, quantiles=(0.1, 0.5))
    recorder = Recorder(monitor)
    trainer = fit([monitor, recorder], model, dataset, max_epochs=1)

    _, margins, losses = hand_margin_pass(model, dataset, batch_size=256)
    expected = expected_metrics(margins, losses, weights, epoch=0, quantiles=(0.1, 0.5), **SMALL_GRID)
    assert_close(monitor.last_metrics, expected)
    assert_close({k: v for k, v in trainer.callback_metrics.items() if k.startswith("stability/")}, expected)
    # the uniform accuracy differs from the weighted one, so the weights were really used
    assert monitor.last_metrics["stability/accuracy"] != pytest.approx(theory.accuracy(margins), abs=1e-6)
    forgotten, learned = theory.flip_masses(recorder.records[0]["margins"], margins, weights)
    assert monitor.last_metrics["stability/flip_forgotten"] == pytest.approx(forgotten, abs=TOL)
    assert monitor.last_metrics["stability/flip_learned"] == pytest.approx(learned, abs=TOL)


def test_tensorboard_events_contain_scalars_histogram_and_figure(tb_logger) -> None:
    pl.seed_everything(3)
    dataset = make_dataset(N)
    model = MLP()
    monitor = StabilityMonitor(grid=SMALL_GRID, log_figure=True)
    recorder = Recorder(monitor)
    fit([monitor, recorder], model, dataset, max_epochs=2, logger=tb_logger)

    events = tensorboard_events(tb_logger.log_dir)
    tags = events.Tags()
    missing = set(monitor.last_metrics) - set(tags["scalars"])
    assert not missing, f"scalars missing from the TensorBoard events: {sorted(missing)}"
    accuracy = events.Scalars("stability/accuracy")
    assert len(accuracy) == 3  # start check + 2 epochs
    assert [e.value for e in accuracy] == pytest.approx(
        [r["metrics"]["stability/accuracy"] for r in recorder.records], abs=1e-6
    )
    assert accuracy[0].step == 0
    for name, value in monitor.last_metrics.items():
        assert events.Scalars(name)[-1].value == pytest.approx(value, rel=1e-6, abs=1e-6), name

    assert "stability/margins" in tags["histograms"]
    histograms = events.Histograms("stability/margins")
    assert len(histograms) == 3
    assert [h.step for h in histograms] == [e.step for e in accuracy]
    for event, record in zip(histograms, recorder.records, strict=True):
        value, margins = event.histogram_value, record["margins"]
        assert value.num == N
        assert value.min == pytest.approx(float(margins.min()))
        assert value.max == pytest.approx(float(margins.max()))
        assert value.sum == pytest.approx(float(margins.sum()), abs=1e-6)
    assert "stability/envelopes" in tags["images"]
    assert len(events.Images("stability/envelopes")) == 3
