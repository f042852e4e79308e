"""Real runs for the Stability tab's tests: the instability demo (configs/instability_demo.yaml: an event at epoch
10 and a stop), a short stable run of the same model with the SharpnessMonitor (a panel), and a copy of it under a
run name that is markup. Made once per session (a few seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from lightning_stability import SharpnessMonitor, StabilityMonitor
from lightning_stability.example import LinearClassifier, OutlierDataModule

MARKUP_RUN = "<img src=x onerror=alert(1)>"


def _fit(root: Path, version: int, max_epochs: int, sharpness: bool) -> None:
    pl.seed_everything(0)
    monitor = StabilityMonitor(every_n_epochs=1, tol=0.01, stop_on_instability=True, patience=1, save_margins=True)
    callbacks: list[pl.Callback] = [monitor]
    if sharpness:
        callbacks.append(SharpnessMonitor(every_n_epochs=1, num_samples=64, max_iter=20))
    model = LinearClassifier(
        input_dim=1, num_classes=2, initial_weight=[[-1.5], [1.5]], initial_bias=[0.0, 0.0], optimizer="sgd", lr=0.5
    )
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger(root, name="demo", version=version, default_hp_metric=False),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    data = OutlierDataModule(num_per_class=50, num_outliers=5)
    if max_epochs > 10:  # the demo's event, at epoch 10 (the package's warnings are errors in the suite)
        with pytest.warns(UserWarning, match="StabilityMonitor: instability at epoch 10"):
            trainer.fit(model, datamodule=data)
    else:
        trainer.fit(model, datamodule=data)


@pytest.fixture(scope="session")
def stability_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``logs/demo/version_0`` (event at epoch 10, stopped), ``logs/demo/version_1`` (2 epochs, stable, with the
    SharpnessMonitor) and ``logs/demo/<img src=x onerror=alert(1)>`` (a copy of version_1)."""
    root = tmp_path_factory.mktemp("stability_tab") / "logs"
    _fit(root, 0, 30, sharpness=False)
    _fit(root, 1, 2, sharpness=True)
    shutil.copytree(root / "demo" / "version_1", root / "demo" / MARKUP_RUN)
    return root
