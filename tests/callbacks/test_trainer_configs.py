"""The monitor under different Trainer configurations: loggers, fast_dev_run, limits, accumulation, validate."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from lightning_stability import StabilityMonitor

from .helpers import MLP, SMALL_GRID, Recorder, make_dataset, make_loader, trainer_kwargs

N = 300


def fit(monitor: StabilityMonitor, model: pl.LightningModule | None = None, batch_size: int = 32, **kwargs):
    pl.seed_everything(0)
    model = model or MLP()
    recorder = Recorder(monitor)
    trainer = pl.Trainer(**trainer_kwargs(**{"callbacks": [monitor, recorder], **kwargs}))
    trainer.fit(model, make_loader(make_dataset(N), batch_size=batch_size))
    return trainer, recorder


def read_csv(logger: CSVLogger) -> list[dict[str, str]]:
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_no_logger() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, recorder = fit(monitor, logger=False, max_epochs=1)
    assert monitor.checks_done == 2
    assert trainer.callback_metrics["stability/num_samples"] == N
    noisy = [str(w.message) for w in caught if "no logger configured" in str(w.message)]
    assert not noisy, f"the monitor warns once per metric without a logger: {noisy[:2]}"


def test_csv_logger_gets_every_check(tmp_path) -> None:
    logger = CSVLogger(tmp_path, name="csv", version=0)
    monitor = StabilityMonitor(grid=SMALL_GRID)
    trainer, recorder = fit(monitor, logger=logger)
    rows = [row for row in read_csv(logger) if row.get("stability/accuracy")]
    assert [float(row["stability/check_epoch"]) for row in rows] == [-1.0, 0.0, 1.0]
    assert [int(row["step"]) for row in rows] == [0, 9, 19]  # 10 batches per epoch; Lightning's epoch-end steps
    for row, record in zip(rows, recorder.records, strict=True):
        for name, value in record["metrics"].items():
            assert float(row[name]) == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_several_loggers(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import HISTOGRAMS, SCALARS, EventAccumulator

    csv_logger = CSVLogger(tmp_path, name="csv", version=0)
    tb_logger = TensorBoardLogger(tmp_path, name="tb", version=0)
    monitor = StabilityMonitor(grid=SMALL_GRID)
    fit(monitor, logger=[csv_logger, tb_logger], max_epochs=1)
    rows = [row for row in read_csv(csv_logger) if row.get("stability/accuracy")]
    assert len(rows) == 2
    events = EventAccumulator(tb_logger.log_dir, size_guidance={SCALARS: 0, HISTOGRAMS: 0})
    events.Reload()
    assert len(events.Scalars("stability/accuracy")) == 2
    assert len(events.Histograms("stability/margins")) == 2
    assert [float(row["stability/accuracy"]) for row in rows] == pytest.approx(
        [e.value for e in events.Scalars("stability/accuracy")], abs=1e-6
    )


def test_fast_dev_run() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=100)
    trainer, recorder = fit(monitor, fast_dev_run=True)
    assert monitor.checks_done == 2  # train start + the single epoch
    # fast_dev_run limits the margin pass to fast_dev_run batches, like every other loop
    assert monitor.last_metrics["stability/num_samples"] == 100
    assert torch.equal(monitor.last_pass.indices, torch.arange(100))


def test_limit_train_batches_still_certifies_every_sample() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    trainer, recorder = fit(monitor, limit_train_batches=2, max_epochs=2)
    assert trainer.global_step == 4
    assert [r["metrics"]["stability/num_samples"] for r in recorder.records] == [N, N, N]
    assert trainer.callback_metrics["stability/num_samples"] == N
    assert torch.equal(monitor.last_pass.indices, torch.arange(N))


def test_gradient_accumulation() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    trainer, recorder = fit(monitor, accumulate_grad_batches=2, max_epochs=2)
    assert trainer.global_step == 10  # 10 batches per epoch, one optimizer step per 2
    assert monitor.checks_done == 3
    assert trainer.callback_metrics["stability/num_samples"] == N
    assert recorder.records[-1]["metrics"]["stability/loss"] < recorder.records[0]["metrics"]["stability/loss"]


def test_every_n_epochs() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, every_n_epochs=2)
    trainer, recorder = fit(monitor, max_epochs=4)
    assert [r["metrics"]["stability/check_epoch"] for r in recorder.records] == [-1.0, 1.0, 3.0]
    assert [r["hook"] for r in recorder.records] == ["train_start", "epoch_end", "epoch_end"]
    assert monitor.last_checked_epoch == 3


def test_check_at_start_false() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, check_at_start=False)
    trainer, recorder = fit(monitor, max_epochs=2)
    assert [r["metrics"]["stability/check_epoch"] for r in recorder.records] == [0.0, 1.0]
    assert "stability/flip_forgotten" not in recorder.records[0]["metrics"]
    assert "stability/flip_forgotten" in recorder.records[1]["metrics"]


def test_trainer_validate_is_a_no_op(tmp_path) -> None:
    logger = CSVLogger(tmp_path, name="csv", version=0)
    monitor = StabilityMonitor(grid=SMALL_GRID)
    trainer = pl.Trainer(**trainer_kwargs(callbacks=[monitor], logger=logger))
    results = trainer.validate(MLP(), make_loader(make_dataset(64, seed=3)))
    assert "val_loss" in results[0]
    assert monitor.checks_done == 0 and monitor.last_pass is None and monitor.last_metrics == {}
    assert not any(name.startswith("stability/") for name in trainer.callback_metrics)
    assert not any(name.startswith("stability/") for row in read_csv(logger) for name, v in row.items() if v)


def test_user_dataset_and_dataloader() -> None:
    """`dataset=` certifies that dataset; `dataloader=` is iterated as given."""
    other = make_dataset(150, seed=11)
    monitor = StabilityMonitor(grid=SMALL_GRID, dataset=other)
    fit(monitor, max_epochs=1)
    assert monitor.last_metrics["stability/num_samples"] == 150
    assert torch.equal(monitor.last_pass.targets, other.tensors[1])

    monitor = StabilityMonitor(grid=SMALL_GRID, dataloader=make_loader(other, batch_size=40))
    trainer, recorder = fit(monitor, max_epochs=1)
    assert torch.equal(monitor.last_pass.indices, torch.arange(150))
    assert torch.equal(monitor.last_pass.targets, other.tensors[1])
