"""Every common logger gets the scalars under the documented names and the rest in its native form: CSV files
beside metrics.csv, MLflow artifacts (local file store), Weights & Biases offline; any other logger gets one
warning that names what it cannot show."""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import StabilityMonitor

from .helpers import RecordingLogger

SMALL_GRID = {"zetas": (0.05, 0.2), "tau_fractions": (1 / 64,), "gammas": (1.0,)}


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=generator)
        return DataLoader(TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()), batch_size=32)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(logger: Any, **monitor_options: Any) -> StabilityMonitor:
    pl.seed_everything(0)
    monitor = StabilityMonitor(grid=SMALL_GRID, log_figure=True, **monitor_options)
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[monitor],
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
    )
    trainer.fit(Classifier())
    return monitor


def test_csv_logger_gets_files_beside_metrics_csv(tmp_path: Path) -> None:
    logger = CSVLogger(str(tmp_path), name="run")
    monitor = fit(logger)
    run = Path(logger.log_dir)
    with open(run / "metrics.csv") as file:
        columns = set(next(csv.reader(file)))
    for name in (
        "stability/accuracy",
        "stability/theorem_a/floor",
        "stability_diagnostics/good_mass/eta_0.5",
        "stability_margins/margin_quantile/q_0.01",
    ):
        assert name in columns
    assert sorted(path.name for path in (run / "histograms" / "stability" / "margins").iterdir()) == [
        "step_00000000.csv",
        "step_00000003.csv",
        "step_00000006.csv",
    ]  # each check at its own step: the count of stepped batches after its epoch
    with open(run / "histograms" / "stability" / "margins" / "step_00000006.csv") as file:
        rows = list(csv.DictReader(file))
    assert sum(int(row["count"]) for row in rows) == 96
    assert len(list((run / "figures" / "stability" / "envelopes").glob("*.png"))) == 3
    summary = (run / "text" / "stability" / "summary.md").read_text()
    assert summary.count("## step") == 3 and f"training accuracy {monitor.last_report.accuracy:.4f}" in summary
    hparams = (run / "hparams.yaml").read_text()
    assert "stability/num_samples: 96" in hparams and "stability_final/theorem_a_floor" in hparams


def test_mlflow_logger_gets_unchanged_names_and_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    from pytorch_lightning.loggers import MLFlowLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    logger = MLFlowLogger(experiment_name="stability", tracking_uri=f"file:{tmp_path / 'mlruns'}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=RuntimeWarning)  # MLflow's renaming warning would fail the test
        monitor = fit(logger, save_margins=str(tmp_path / "margins"))
    client, run_id = logger.experiment, logger.run_id
    run = client.get_run(run_id)
    for name in (
        "stability/accuracy",
        "stability/theorem_b/floor",
        "stability_diagnostics/bad_mass/eta_1",
        "stability_margins/margin_quantile/q_0.5",
        "stability_final/accuracy",
    ):
        assert name in run.data.metrics, sorted(run.data.metrics)
    assert run.data.metrics["stability/accuracy"] == pytest.approx(monitor.last_report.accuracy)
    assert run.data.params["stability/num_classes"] == "3"
    artifacts = {item.path for item in client.list_artifacts(run_id, "figures/stability/envelopes")}
    assert len(artifacts) == 3
    histograms = {item.path for item in client.list_artifacts(run_id, "histograms/stability/margins")}
    assert "histograms/stability/margins/step_00000006.csv" in histograms
    assert len(client.list_artifacts(run_id, "text/stability/summary")) == 3
    # the Stability page of the run at fit end (docs/dashboard.md): the run's checks as inert data
    page = Path(client.download_artifacts(run_id, "stability.html", str(tmp_path))).read_text(encoding="utf-8")
    (data,) = re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', page, flags=re.S)
    (view,) = json.loads(data)["runs"]
    assert len(view["checks"]) == 3 and view["checks"][-1]["accuracy"] == pytest.approx(monitor.last_report.accuracy)


def test_wandb_offline_gets_histograms_images_and_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    from pytorch_lightning.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(project="stability", save_dir=str(tmp_path), offline=True)
    logged: list[dict[str, Any]] = []
    original = logger.experiment.log
    monkeypatch.setattr(logger.experiment, "log", lambda data, *a, **k: (logged.append(data), original(data, *a, **k)))
    monitor = fit(logger, save_margins=str(tmp_path / "margins"))
    import wandb

    kinds = {key: type(value) for entry in logged for key, value in entry.items()}
    assert kinds["stability/margins"] is wandb.Histogram
    assert kinds["stability/envelopes"] is wandb.Image
    assert kinds["stability/summary"] is wandb.Html
    assert kinds["stability"] is wandb.Html  # the Stability page at fit end
    assert "stability/accuracy" in kinds
    assert logger.experiment.config["stability/num_samples"] == 96
    assert logger.experiment.summary["stability_final/accuracy"] == pytest.approx(monitor.last_report.accuracy)
    logger.experiment.finish()


def test_another_logger_gets_the_scalars_and_one_warning(tmp_path: Path) -> None:
    logger = RecordingLogger()  # a logger of the user's own that keeps scalars only
    with pytest.warns(UserWarning) as record:
        fit(logger)
    messages = [str(w.message) for w in record if "receives the scalars only" in str(w.message)]
    assert len(messages) == 1
    assert "RecordingLogger" in messages[0] and "histogram" in messages[0] and "figure" in messages[0]
    names = set().union(*(metrics for _, metrics in logger.calls))
    assert "stability/accuracy" in names and "stability/theorem_a/floor" in names


def test_the_user_s_logger_gets_no_attribute_and_its_adapter_lives_as_long_as_it(tmp_path: Path) -> None:
    """The adapters (and their one-warning state) are kept in `loggers`' registry, not on the logger: a fit
    leaves the logger's attributes as Lightning set them, the same adapter is found for it again, and the
    registry lets the logger go."""
    import gc
    import weakref

    from lightning_stability import loggers

    logger = RecordingLogger()
    with pytest.warns(UserWarning, match="receives the scalars only"):
        fit(logger)
    fitted = set(vars(logger))
    reference = RecordingLogger()
    reference.calls = logger.calls
    assert fitted == set(vars(reference))  # only what the logger's own class and Lightning set
    adapter = loggers.adapter_for(logger)
    assert loggers.adapter_for(logger) is adapter and adapter.logger is logger and adapter.warned
    assert set(vars(logger)) == fitted and not any("stability" in name for name in dir(logger))
    csv = CSVLogger(str(tmp_path))
    assert isinstance(loggers.adapter_for(csv), loggers.CSVAdapter)
    gone = weakref.ref(logger)
    del logger, adapter, reference
    gc.collect()
    assert gone() is None  # the registry kept nothing alive
    assert all(adapter.refers_to(adapter.logger) for adapter in loggers._REGISTRY.values())


class UnhashableLogger(RecordingLogger):
    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnhashableLogger)


class SlottedLogger:
    """A duck-typed logger that can be neither weakly referenced nor given an attribute."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((step, metrics))


@pytest.mark.parametrize("kind", [RecordingLogger, UnhashableLogger, SlottedLogger])
def test_one_warning_per_logger_of_any_kind(kind: type) -> None:
    """Hashable or not (and then equal to another), weakly referenceable or not: one adapter, so one warning,
    per logger object."""
    import gc
    import warnings

    from lightning_stability import loggers

    first, second = kind(), kind()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            for logger in (first, second):
                loggers.adapter_for(logger).cannot_show(None, "histogram x")  # type: ignore[arg-type]
    assert sum("receives the scalars only" in str(w.message) for w in record) == 2
    assert loggers.adapter_for(first) is not loggers.adapter_for(second)
    assert loggers.adapter_for(first).logger is first
    if kind is not SlottedLogger:  # the registry lets a weakly referenceable logger go, hashable or not
        registered = len(loggers._REGISTRY)
        del first, second, logger
        gc.collect()
        assert len(loggers._REGISTRY) == registered - 2
