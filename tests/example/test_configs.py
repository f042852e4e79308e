"""The configs in configs/: exactly these five; each instantiates with the settings its YAML gives (callbacks, trainer,
model, data); configs/mnist_all_monitors.yaml has all four monitors, and a short run of it logs every monitor's
metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from pytorch_lightning.callbacks import ProgressBar
from torch import nn

from lightning_stability import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor, StabilityMonitor
from lightning_stability.cli import _lightning_cli, main
from lightning_stability.example import OutlierDataModule

from ..helpers import CONFIGS_DIR, tensorboard_events

CONFIGS = sorted(CONFIGS_DIR.glob("*.yaml"))
CONFIG = CONFIGS_DIR / "mnist_all_monitors.yaml"
MONITORS = (StabilityMonitor, SharpnessMonitor, ParametrizationMonitor, GradientFlowMonitor)


def test_there_are_exactly_the_five_configs():
    names = {path.name for path in CONFIGS}
    assert names == {
        "mnist_abs_mlp.yaml",
        "mnist_all_monitors.yaml",
        "mnist_full.yaml",
        "mnist_ddp.yaml",
        "instability_demo.yaml",
    }


def _same(actual, expected) -> bool:
    """YAML values against instantiated ones: lists ~ tuples/tensors, paths ~ strings, ints ~ floats."""
    if isinstance(actual, torch.Tensor):
        actual = actual.tolist()
    if isinstance(actual, tuple | list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(_same(a, e) for a, e in zip(actual, expected))
    if isinstance(actual, Path):
        actual = str(actual)
    return actual == expected


def _data_settings(datamodule) -> dict:
    """The settings a data module shows: its attributes, or for the demo's data module the counts of its data."""
    if isinstance(datamodule, OutlierDataModule):
        x, y = datamodule.dataset.tensors
        outliers = x[:, 0] < -5  # the class-1 points far on the wrong side
        assert bool((y[outliers] == 1).all())
        return {"num_per_class": int((y == 0).sum()), "num_outliers": int(outliers.sum())}
    return vars(datamodule)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.name)
@pytest.mark.usefixtures("in_tmp_path")
def test_every_config_parses_and_instantiates(config):
    """The instantiated trainer, callbacks, model and data module have the YAML's settings."""
    cfg = yaml.safe_load(config.read_text())
    cli = _lightning_cli()(args=["--config", str(config)], run=False)

    # the monitors, in the YAML's order, with every setting the YAML gives
    ours = [c for c in cli.trainer.callbacks if isinstance(c, MONITORS)]
    assert [f"{type(c).__module__.split('.')[0]}.{type(c).__name__}" for c in ours] == [
        entry["class_path"] for entry in cfg["trainer"]["callbacks"]
    ]
    for callback, entry in zip(ours, cfg["trainer"]["callbacks"], strict=True):
        for key, value in entry.get("init_args", {}).items():
            assert _same(getattr(callback, key), value), (type(callback).__name__, key, getattr(callback, key), value)

    # the trainer
    trainer, settings = cli.trainer, cfg["trainer"]
    assert trainer.max_epochs == settings["max_epochs"]
    assert trainer.num_devices == settings["devices"]
    if settings["accelerator"] == "cpu":
        assert type(trainer.accelerator).__name__ == "CPUAccelerator"
    if "strategy" in settings:
        assert type(trainer.strategy).__name__.lower() == f"{settings['strategy']}strategy"
    if "log_every_n_steps" in settings:
        assert trainer.log_every_n_steps == settings["log_every_n_steps"]
    progress_bars = [c for c in trainer.callbacks if isinstance(c, ProgressBar)]
    assert bool(progress_bars) == settings.get("enable_progress_bar", True)
    logger = settings["logger"]
    assert f"{type(trainer.logger).__module__}.{type(trainer.logger).__name__}".endswith(
        logger["class_path"].rsplit(".", 1)[1]
    )
    assert (trainer.logger.save_dir, trainer.logger.name) == (
        logger["init_args"]["save_dir"],
        logger["init_args"]["name"],
    )

    # the model: its hyperparameters, its layers and its optimizer are the YAML's
    model, model_cfg = cli.model, cfg["model"]
    assert f"lightning_stability.example.{type(model).__name__}" == model_cfg["class_path"]
    hparams = dict(model.hparams)
    for key, value in model_cfg["init_args"].items():
        assert _same(hparams[key], value), (key, hparams[key], value)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    widths = [linears[0].in_features] + [m.out_features for m in linears]
    assert widths == [hparams["input_dim"], *hparams.get("hidden_dims", ()), hparams["num_classes"]]
    if "initial_weight" in hparams:
        assert linears[0].weight.tolist() == hparams["initial_weight"]
        assert linears[0].bias.tolist() == hparams["initial_bias"]
    optimizer = model.configure_optimizers()
    assert type(optimizer).__name__.lower() == hparams["optimizer"]
    assert optimizer.defaults["lr"] == hparams["lr"]
    if hparams["optimizer"] == "sgd":
        assert optimizer.defaults["momentum"] == hparams["momentum"]

    # the data module: its class and every setting (source, directory, batch size, ...)
    datamodule, data_cfg = cli.datamodule, cfg["data"]
    assert f"lightning_stability.example.{type(datamodule).__name__}" == data_cfg["class_path"]
    observed = _data_settings(datamodule)
    for key, value in data_cfg["init_args"].items():
        assert _same(observed[key], value), (key, observed[key], value)


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
