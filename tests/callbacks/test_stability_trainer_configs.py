"""The monitor under different Trainer configurations: loggers, fast_dev_run, limits, accumulation, validate."""

from __future__ import annotations

import warnings

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

from lightning_stability import StabilityMonitor

from .. import helpers
from ..helpers import MLP, SMALL_GRID, Recorder, csv_rows, make_dataset, make_loader, tensorboard_events

N = 300


def fit(monitor: StabilityMonitor, **kwargs) -> tuple[pl.Trainer, Recorder]:
    """A seeded fit of a fresh MLP on N samples with the monitor and a Recorder after it."""
    recorder = Recorder(monitor)
    return helpers.fit([monitor, recorder], data=N, seed=0, **kwargs), recorder


def csv_checks(logger: CSVLogger) -> list[dict[str, str]]:
    return csv_rows(logger.log_dir, "stability/accuracy")


def test_no_logger() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, recorder = fit(monitor, logger=False, max_epochs=1)
    assert monitor.checks_done == 2
    assert "stability/accuracy" in trainer.callback_metrics and monitor.last_report.num_samples == N
    noisy = [str(w.message) for w in caught if "no logger configured" in str(w.message)]
    assert not noisy, f"the monitor warns once per metric without a logger: {noisy[:2]}"


def test_csv_logger_gets_every_check(csv_logger) -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    trainer, recorder = fit(monitor, logger=csv_logger)
    rows = csv_checks(csv_logger)
    assert [float(row["stability_diagnostics/check_epoch"]) for row in rows] == [-1.0, 0.0, 1.0]
    assert [int(row["step"]) for row in rows] == [0, 10, 20]  # 10 batches per epoch: the count after each epoch
    for row, record in zip(rows, recorder.records, strict=True):
        for name, value in record["metrics"].items():
            assert float(row[name]) == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_several_loggers(csv_logger, tb_logger) -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    fit(monitor, logger=[csv_logger, tb_logger], max_epochs=1)
    rows = csv_checks(csv_logger)
    assert len(rows) == 2
    events = tensorboard_events(tb_logger.log_dir)
    assert len(events.Scalars("stability/accuracy")) == 2
    assert len(events.Histograms("stability/margins")) == 2
    assert [float(row["stability/accuracy"]) for row in rows] == pytest.approx(
        [e.value for e in events.Scalars("stability/accuracy")], abs=1e-6
    )


def test_fast_dev_run() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=100)
    with pytest.warns(UserWarning, match=r"StabilityMonitor: fast_dev_run: every margin pass covers only the first 1"):
        trainer, recorder = fit(monitor, fast_dev_run=True)
    assert monitor.checks_done == 2  # train start + the single epoch
    # fast_dev_run limits the margin pass to fast_dev_run batches, like every other loop
    assert monitor.last_report.num_samples == 100
    assert torch.equal(monitor.last_pass.indices, torch.arange(100))


def test_limit_train_batches_still_certifies_every_sample() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    trainer, recorder = fit(monitor, limit_train_batches=2, max_epochs=2)
    assert trainer.global_step == 4
    assert [r["margins"].numel() for r in recorder.records] == [N, N, N]
    assert "stability/accuracy" in trainer.callback_metrics and monitor.last_report.num_samples == N
    assert torch.equal(monitor.last_pass.indices, torch.arange(N))


def test_gradient_accumulation() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    trainer, recorder = fit(monitor, accumulate_grad_batches=2, max_epochs=2)
    assert trainer.global_step == 10  # 10 batches per epoch, one optimizer step per 2
    assert monitor.checks_done == 3
    assert "stability/accuracy" in trainer.callback_metrics and monitor.last_report.num_samples == N
    assert recorder.records[-1]["metrics"]["stability/loss"] < recorder.records[0]["metrics"]["stability/loss"]


def test_every_n_epochs() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, every_n_epochs=2)
    trainer, recorder = fit(monitor, max_epochs=4)
    assert [r["metrics"]["stability_diagnostics/check_epoch"] for r in recorder.records] == [-1.0, 1.0, 3.0]
    assert [r["hook"] for r in recorder.records] == ["train_start", "epoch_end", "epoch_end"]
    assert monitor.last_checked_epoch == 3


def test_check_at_start_false() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, check_at_start=False)
    trainer, recorder = fit(monitor, max_epochs=2)
    assert [r["metrics"]["stability_diagnostics/check_epoch"] for r in recorder.records] == [0.0, 1.0]
    assert "stability_events/flip_forgotten" not in recorder.records[0]["metrics"]
    assert "stability_events/flip_forgotten" in recorder.records[1]["metrics"]


def test_trainer_validate_is_a_no_op(csv_logger) -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    trainer = pl.Trainer(**helpers.trainer_kwargs(callbacks=[monitor], logger=csv_logger))
    results = trainer.validate(MLP(), make_loader(make_dataset(64, seed=3)))
    assert "val_loss" in results[0]
    assert monitor.checks_done == 0 and monitor.last_pass is None and monitor.last_metrics == {}
    assert not any(name.startswith("stability/") for name in trainer.callback_metrics)
    assert not any(
        name.startswith("stability/") for row in csv_rows(csv_logger.log_dir) for name, v in row.items() if v
    )


def test_user_dataset_and_dataloader() -> None:
    """`dataset=` certifies that dataset; `dataloader=` is iterated as given."""
    other = make_dataset(150, seed=11)
    monitor = StabilityMonitor(grid=SMALL_GRID, dataset=other)
    fit(monitor, max_epochs=1)
    assert monitor.last_report.num_samples == 150
    assert torch.equal(monitor.last_pass.targets, other.tensors[1])

    monitor = StabilityMonitor(grid=SMALL_GRID, dataloader=make_loader(other, batch_size=40))
    trainer, recorder = fit(monitor, max_epochs=1)
    assert torch.equal(monitor.last_pass.indices, torch.arange(150))
    assert torch.equal(monitor.last_pass.targets, other.tensors[1])


def test_one_batch_an_epoch_gives_every_check_its_own_step(csv_logger, tmp_path) -> None:
    """With one batch an epoch the check before training and the first epoch's check used to share step 0 (a
    logger keeps one of them); each check has its own step, and its margin file carries the loggers' step."""
    monitor = StabilityMonitor(grid=SMALL_GRID, save_margins=tmp_path / "margins")
    fit(monitor, logger=csv_logger, batch_size=N, max_epochs=3)
    rows = csv_checks(csv_logger)
    assert [float(row["stability_diagnostics/check_epoch"]) for row in rows] == [-1.0, 0.0, 1.0, 2.0]
    assert [int(row["step"]) for row in rows] == [0, 1, 2, 3]
    steps = sorted(int(path.stem.split("step=")[1]) for path in (tmp_path / "margins").glob("*.pt"))
    assert steps == [0, 1, 2, 3]
