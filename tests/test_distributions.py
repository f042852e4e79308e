"""Both Lightning distributions, first-class: real fits with `lightning.pytorch` and with `pytorch_lightning`
(Trainer, LightningModule, TensorBoardLogger of the same distribution), and LightningCLI of each accepting the
callbacks by class path."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_stability
from lightning_stability import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor, StabilityMonitor
from lightning_stability.distributions import AVAILABLE, MisconfigurationError

DISTRIBUTIONS = ["lightning.pytorch", "pytorch_lightning"]
SMALL_GRID = {"zetas": (0.05, 0.2), "tau_fractions": (1 / 64,), "gammas": (1.0,)}


def test_both_distributions_are_installed_for_the_tests() -> None:
    assert set(AVAILABLE) == set(DISTRIBUTIONS)


def classifier_class(distribution: str) -> type:
    package = importlib.import_module(distribution)

    class Classifier(package.LightningModule):  # type: ignore[name-defined,misc]
        def __init__(self, hidden: int = 16) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def train_dataloader(self) -> DataLoader:
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(96, 4, generator=generator)
            y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
            return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Classifier


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_callbacks_are_callbacks_of_both_distributions(distribution: str) -> None:
    callback_class = importlib.import_module(distribution).Callback
    for monitor in (StabilityMonitor(), SharpnessMonitor(), ParametrizationMonitor(), GradientFlowMonitor()):
        assert isinstance(monitor, callback_class)
    fabric = "lightning.fabric" if distribution == "lightning.pytorch" else "lightning_fabric"
    exception = importlib.import_module(f"{fabric}.utilities.exceptions").MisconfigurationException
    with pytest.raises(exception, match="every_n_epochs"):
        StabilityMonitor(every_n_epochs=0)
    assert issubclass(MisconfigurationError, exception)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_a_fit_writes_scalars_histograms_images_and_text(distribution: str, tmp_path: Path) -> None:
    package = importlib.import_module(distribution)
    loggers = importlib.import_module(f"{distribution}.loggers")
    package.seed_everything(0)
    monitor = StabilityMonitor(grid=SMALL_GRID, log_figure=True, save_samples=True)
    trainer = package.Trainer(
        max_epochs=2,
        callbacks=[monitor, ParametrizationMonitor(num_samples=32)],
        logger=loggers.TensorBoardLogger(str(tmp_path), name="run"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
    )
    trainer.fit(classifier_class(distribution)())
    assert monitor.checks_done == 3  # before training and after both epochs
    events = EventAccumulator(str(tmp_path / "run" / "version_0"), size_guidance={"histograms": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert "stability/accuracy" in tags["scalars"] and "stability/theorem_a/floor" in tags["scalars"]
    assert [event.step for event in events.Histograms("stability/margins")] == [0, 3, 6]  # each check at its own step
    assert "stability/parametrization/layer0/balance" in tags["histograms"]
    assert len(events.Images("stability/envelopes")) == 3
    summaries = [event for event in events.Tensors("stability/summary/text_summary")]
    assert len(summaries) == 3
    last = summaries[-1].tensor_proto.string_val[0].decode()
    assert f"training accuracy {monitor.last_report.accuracy:.4f}" in last
    # the per-sample dynamics, in the logger's run directory (docs/samples.md)
    rows = (tmp_path / "run" / "version_0" / "samples.csv").read_text().splitlines()
    assert len(rows) == 97 and [int(row.split(",")[-1]) for row in rows[1:]] == [3] * 96  # 96 samples, 3 checks each


def test_the_cli_of_the_lightning_package_accepts_the_callbacks_by_class_path(tmp_path: Path) -> None:
    from lightning.pytorch.cli import LightningCLI

    model_class = classifier_class("lightning.pytorch")
    cli = LightningCLI(
        model_class,
        args=[
            "--trainer.callbacks+=lightning_stability.StabilityMonitor",
            "--trainer.callbacks.every_n_epochs=2",
            "--trainer.callbacks+=lightning_stability.SharpnessMonitor",
            "--trainer.callbacks+=lightning_stability.ParametrizationMonitor",
            "--trainer.callbacks+=lightning_stability.GradientFlowMonitor",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        run=False,
    )
    kinds = [type(callback) for callback in cli.trainer.callbacks]
    for monitor in (StabilityMonitor, SharpnessMonitor, ParametrizationMonitor, GradientFlowMonitor):
        assert monitor in kinds
    stability = next(c for c in cli.trainer.callbacks if isinstance(c, StabilityMonitor))
    assert stability.every_n_epochs == 2


def test_the_cli_of_the_pytorch_lightning_package_accepts_the_callbacks_by_class_path(tmp_path: Path) -> None:
    from pytorch_lightning.cli import LightningCLI

    cli = LightningCLI(
        classifier_class("pytorch_lightning"),
        args=[
            "--trainer.callbacks+=lightning_stability.StabilityMonitor",
            "--trainer.callbacks+=lightning_stability.GradientFlowMonitor",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        run=False,
    )
    kinds = [type(callback) for callback in cli.trainer.callbacks]
    assert StabilityMonitor in kinds and GradientFlowMonitor in kinds


def test_the_package_names_the_distributions_it_found() -> None:
    assert lightning_stability.distributions.distribution_of(StabilityMonitor()) in DISTRIBUTIONS


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_warnings_point_at_the_users_line(distribution: str) -> None:
    """A monitor's warning names the user's ``trainer.fit(...)`` line, not a line of the package or Lightning."""
    package = importlib.import_module(distribution)
    monitor = StabilityMonitor(every_n_epochs=5, check_at_start=False)  # max_epochs=1: no scheduled check
    trainer = package.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, callbacks=[monitor]
    )
    with pytest.warns(UserWarning, match="StabilityMonitor: with max_epochs=1 and every_n_epochs=5") as caught:
        fit_line = inspect.currentframe().f_lineno + 1  # the next line
        trainer.fit(classifier_class(distribution)())
    ours = [w for w in caught if str(w.message).startswith("StabilityMonitor:")]
    assert ours and all((w.filename, w.lineno) == (__file__, fit_line) for w in ours)
    assert monitor.checks_done == 1  # the final weights were checked at fit end
