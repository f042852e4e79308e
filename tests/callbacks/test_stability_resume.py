"""A run resumed from a mid-run checkpoint logs the same checks, flips, counters and events as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

from lightning_stability import StabilityMonitor

from ..helpers import MLP, SMALL_GRID, Recorder, csv_rows, epoch_checkpoints, fit, make_dataset, make_loader

pytestmark = [
    # the seeded runs have a small accuracy dip (an instability event); the tests compare resumed and uninterrupted
    # runs, not the warning
    pytest.mark.filterwarnings("ignore:StabilityMonitor\\x3a instability at epoch:UserWarning"),
]

MAX_EPOCHS = 3


def run(tmp_path: Path, name: str, with_validation: bool, ckpt_path: Path | None = None):
    pl.seed_everything(0)
    model = MLP(lr=0.5)  # deterministic: no dropout, no shuffling, plain SGD
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=100, tol=0.0)
    recorder = Recorder(monitor)
    # with a validation loop: save at validation end, i.e. before the monitor's check of the epoch
    checkpoint = epoch_checkpoints(tmp_path / name / "checkpoints", save_on_train_epoch_end=not with_validation)
    val_loader = make_loader(make_dataset(64, seed=7), batch_size=64) if with_validation else None
    trainer = fit(
        [monitor, recorder, checkpoint],
        model,
        300,
        batch_size=30,
        val_loader=val_loader,
        ckpt_path=ckpt_path,
        max_epochs=MAX_EPOCHS,
        logger=CSVLogger(tmp_path, name=name, version=0),
        enable_checkpointing=True,
        limit_val_batches=1,
    )
    return monitor, recorder, trainer


def csv_checks(trainer: pl.Trainer) -> dict[float, dict[str, str]]:
    """The monitor's rows of metrics.csv (its columns, the step and the epoch), by checked epoch."""
    rows = csv_rows(trainer.logger.log_dir, "stability_diagnostics/check_epoch")
    keep = lambda row: {k: v for k, v in row.items() if k.startswith("stability/") or k in ("step", "epoch")}
    checks = {float(row["stability_diagnostics/check_epoch"]): keep(row) for row in rows}
    assert len(checks) == len(rows), "an epoch was checked twice"
    return checks


def assert_same_records(resumed: list[dict], uninterrupted: list[dict]) -> None:
    assert [r["metrics"]["stability_diagnostics/check_epoch"] for r in resumed] == [
        r["metrics"]["stability_diagnostics/check_epoch"] for r in uninterrupted
    ]
    for a, b in zip(resumed, uninterrupted, strict=True):
        assert torch.equal(a["margins"], b["margins"])
        assert a["metrics"] == b["metrics"]  # flips, events, counters, floors: all of it
        for key in ("checks_done", "instability_count", "consecutive_instabilities"):
            assert a[key] == b[key], key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The uninterrupted runs (with and without a validation loop), each run once for the module."""
    cache: dict[bool, tuple] = {}

    def get(with_validation: bool):
        if with_validation not in cache:
            tmp_path = tmp_path_factory.mktemp("val" if with_validation else "no_val")
            monitor, recorder, trainer = run(tmp_path, "full", with_validation)
            assert [r["metrics"]["stability_diagnostics/check_epoch"] for r in recorder.records] == [
                -1.0,
                0.0,
                1.0,
                2.0,
            ]
            assert monitor.checks_done == 4
            checkpoints = tmp_path / "full" / "checkpoints"
            assert sorted(p.name for p in checkpoints.iterdir()) == [f"epoch={e}.ckpt" for e in range(MAX_EPOCHS)]
            cache[with_validation] = (tmp_path, monitor, recorder.records, csv_checks(trainer), checkpoints)
        return cache[with_validation]

    return get


def assert_same_end_state(resumed_monitor: StabilityMonitor, monitor: StabilityMonitor) -> None:
    assert resumed_monitor.state_dict().keys() == monitor.state_dict().keys()
    for key in ("checks_done", "last_checked_epoch", "instability_count", "consecutive_instabilities", "stop_reason"):
        assert getattr(resumed_monitor, key) == getattr(monitor, key), key
    assert resumed_monitor.history.previous.loss == monitor.history.previous.loss
    assert resumed_monitor.history.previous.accuracy == monitor.history.previous.accuracy
    assert torch.equal(resumed_monitor.history.previous.margins, monitor.history.previous.margins)


def assert_same_csv(resumed_trainer: pl.Trainer, expected: list[dict], full_csv: dict) -> None:
    """The loggers got the same values, at the same steps and epochs."""
    resumed_csv = csv_checks(resumed_trainer)
    assert sorted(resumed_csv) == [r["metrics"]["stability_diagnostics/check_epoch"] for r in expected]
    for epoch, row in resumed_csv.items():
        assert row == full_csv[epoch], f"check of epoch {epoch} logged differently after resuming"


@pytest.mark.parametrize("resume_epoch", [0, 1])
@pytest.mark.parametrize("with_validation", [False, True], ids=["no_val", "val"])
def test_resume_from_mid_run_checkpoint_equals_uninterrupted_run(
    uninterrupted, with_validation: bool, resume_epoch: int
) -> None:
    tmp_path, monitor, full, full_csv, checkpoints = uninterrupted(with_validation)
    checkpoint = checkpoints / f"epoch={resume_epoch}.ckpt"
    saved = torch.load(checkpoint, weights_only=False)["callbacks"][monitor.state_key]
    # without validation ModelCheckpoint saves at train epoch end, after the monitor's check; with validation
    # (save_on_train_epoch_end=False) at validation end, before it
    assert saved["last_checked_epoch"] == (resume_epoch - 1 if with_validation else resume_epoch)

    resumed_monitor, recorder, resumed_trainer = run(
        tmp_path, f"resumed_from_{resume_epoch}", with_validation, ckpt_path=checkpoint
    )
    records = recorder.records
    if with_validation:
        # the check the checkpoint missed runs once after resuming, on the same weights (Lightning 2.x re-enters the
        # finished epoch's end; a resume at the next epoch is caught up at train start, see the test below)
        assert records[0]["metrics"]["stability_diagnostics/check_epoch"] == resume_epoch
        expected = full[resume_epoch + 1 :]
    else:
        assert all(r["hook"] == "epoch_end" for r in records), "no check may be repeated after resuming"
        expected = full[resume_epoch + 2 :]
    assert_same_records(records, expected)
    assert_same_end_state(resumed_monitor, monitor)
    assert_same_csv(resumed_trainer, expected, full_csv)


def test_catch_up_check_at_train_start_for_a_checkpoint_written_before_the_check(uninterrupted) -> None:
    """Trainer state after epoch 1, monitor state from before epoch 1's check: the check is caught up at train start."""
    tmp_path, monitor, full, full_csv, checkpoints = uninterrupted(False)
    checkpoint = torch.load(checkpoints / "epoch=1.ckpt", weights_only=False)
    before = torch.load(checkpoints / "epoch=0.ckpt", weights_only=False)["callbacks"][monitor.state_key]
    assert checkpoint["callbacks"][monitor.state_key]["last_checked_epoch"] == 1 and before["last_checked_epoch"] == 0
    checkpoint["callbacks"][monitor.state_key] = before
    torch.save(checkpoint, tmp_path / "missed_check.ckpt")

    resumed_monitor, recorder, resumed_trainer = run(
        tmp_path, "resumed_missed", False, ckpt_path=tmp_path / "missed_check.ckpt"
    )
    assert [r["hook"] for r in recorder.records] == ["train_start", "epoch_end"]
    assert recorder.records[0]["epoch"] == 2  # Lightning resumed at the next epoch
    assert_same_records(recorder.records, full[2:])
    assert_same_end_state(resumed_monitor, monitor)
    assert_same_csv(resumed_trainer, full[2:], full_csv)
