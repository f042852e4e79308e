"""The configs in configs/: they parse and instantiate; configs/mnist_all_monitors.yaml has all four monitors, and a
short run of it logs every monitor's metrics."""

from __future__ import annotations

import pytest
from pytorch_lightning import LightningModule

from lightning_stability import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor, StabilityMonitor
from lightning_stability.cli import _lightning_cli, main

from ..helpers import CONFIGS_DIR, tensorboard_events

CONFIGS = sorted(CONFIGS_DIR.glob("*.yaml"))
CONFIG = CONFIGS_DIR / "mnist_all_monitors.yaml"
MONITORS = (StabilityMonitor, SharpnessMonitor, ParametrizationMonitor, GradientFlowMonitor)


def test_there_are_the_four_configs():
    names = {path.name for path in CONFIGS}
    assert {"mnist_abs_mlp.yaml", "mnist_full.yaml", "mnist_ddp.yaml", "instability_demo.yaml"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.name)
@pytest.mark.usefixtures("in_tmp_path")
def test_every_config_parses_and_instantiates(config):
    cli = _lightning_cli()(args=["--config", str(config)], run=False)
    assert isinstance(cli.model, LightningModule)
    assert any(isinstance(callback, StabilityMonitor) for callback in cli.trainer.callbacks)


@pytest.mark.usefixtures("in_tmp_path")
def test_the_config_has_every_monitor() -> None:
    cli = _lightning_cli()(args=["--config", str(CONFIG)], run=False)
    assert [type(c) for c in cli.trainer.callbacks if isinstance(c, MONITORS)] == list(MONITORS)
    sharpness = next(c for c in cli.trainer.callbacks if isinstance(c, SharpnessMonitor))
    assert sharpness.num_samples == 512 and cli.model.hparams.optimizer == "sgd"


def test_a_short_run_logs_every_monitor(in_tmp_path) -> None:
    main(["fit", "--config", str(CONFIG), "--trainer.max_epochs=1", "--trainer.limit_train_batches=21"])
    events = tensorboard_events(in_tmp_path / "stability_logs" / "mnist_all_monitors" / "version_0")
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
