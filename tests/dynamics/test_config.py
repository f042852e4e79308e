"""configs/mnist_all_monitors.yaml: all four monitors instantiate, and a short run logs every monitor's metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_stability import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor, StabilityMonitor
from lightning_stability.cli import _lightning_cli, main

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "mnist_all_monitors.yaml"
MONITORS = (StabilityMonitor, SharpnessMonitor, ParametrizationMonitor, GradientFlowMonitor)


def test_the_config_has_every_monitor(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = _lightning_cli()(args=["--config", str(CONFIG)], run=False)
    assert [type(c) for c in cli.trainer.callbacks if isinstance(c, MONITORS)] == list(MONITORS)
    sharpness = next(c for c in cli.trainer.callbacks if isinstance(c, SharpnessMonitor))
    assert sharpness.num_samples == 512 and cli.model.hparams.optimizer == "sgd"


def test_a_short_run_logs_every_monitor(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(CONFIG), "--trainer.max_epochs=1", "--trainer.limit_train_batches=21"])
    run_dir = tmp_path / "stability_logs" / "mnist_all_monitors" / "version_0"
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0}).Reload()
    scalars = events.Tags()["scalars"]
    for name in (
        "stability/accuracy",
        "stability/sharpness/lambda_max",
        "stability/sharpness/lr_lambda_over_2",
        "stability/parametrization/layer0/dead_fraction",
        "stability/parametrization/layer1/balance_spread",
        "stability/gradient_flow/first_last_ratio",
        "stability/gradient_flow/norm/net.0",
    ):
        assert name in scalars, name
    assert [e.step for e in events.Scalars("stability/gradient_flow/first_last_ratio")] == [0, 20]
    assert events.Scalars("stability/sharpness/lr")[-1].value == pytest.approx(0.1)  # float32 in TensorBoard
    assert "stability/parametrization/layer1/balance" in events.Tags()["histograms"]
