"""samples.csv of a run resumed from a checkpoint is byte-for-byte the one of the uninterrupted run (docs/samples.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

from lightning_stability import StabilityMonitor
from lightning_stability.files import load_samples_csv

from ..helpers import MLP, SMALL_GRID, epoch_checkpoints, fit

pytestmark = [
    # the seeded runs have a small accuracy dip (an instability event); the tests compare resumed and uninterrupted
    # runs, not the warning
    pytest.mark.filterwarnings("ignore:StabilityMonitor\\x3a instability at epoch:UserWarning"),
]

MAX_EPOCHS = 3


def run(tmp_path: Path, name: str, ckpt_path: Path | None = None) -> tuple[StabilityMonitor, Path]:
    pl.seed_everything(0)
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=100, save_samples=True, sample_history=True)
    trainer = fit(
        [monitor, epoch_checkpoints(tmp_path / name / "checkpoints")],
        MLP(lr=0.5),
        300,
        batch_size=30,
        ckpt_path=ckpt_path,
        max_epochs=MAX_EPOCHS,
        logger=CSVLogger(tmp_path, name=name, version=0),
        enable_checkpointing=True,
    )
    return monitor, Path(trainer.logger.log_dir) / "samples.csv"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("samples_resume")
    monitor, csv_path = run(tmp_path, "full")
    assert monitor.checks_done == MAX_EPOCHS + 1
    return tmp_path, monitor, csv_path


def assert_same(monitor: StabilityMonitor, csv_path: Path, full_monitor: StabilityMonitor, full_csv: Path) -> None:
    assert csv_path.read_bytes() == full_csv.read_bytes()
    rows = load_samples_csv(csv_path)
    assert len(rows) == 300 and rows.checks.tolist() == [MAX_EPOCHS + 1] * 300
    assert int(rows.forgetting_events.sum()) > 0  # the run forgets samples, so the counts carried over matter
    state, full_state = monitor.statistics.state_dict(), full_monitor.statistics.state_dict()
    assert state.keys() == full_state.keys()
    for key, value in full_state.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(state[key], value), key
        elif key == "history":
            assert len(state[key]) == len(value)
            assert all(torch.equal(a[1], b[1]) for a, b in zip(state[key], value, strict=True))
        else:
            assert state[key] == value, key


def test_resume_from_an_epoch_checkpoint_writes_the_same_samples_csv(uninterrupted) -> None:
    tmp_path, full_monitor, full_csv = uninterrupted
    checkpoint = tmp_path / "full" / "checkpoints" / "epoch=0.ckpt"
    saved = torch.load(checkpoint, weights_only=False)["callbacks"][full_monitor.state_key]["statistics"]
    assert saved["checks"] == 2  # the check before training and epoch 0's
    monitor, csv_path = run(tmp_path, "resumed", ckpt_path=checkpoint)
    assert_same(monitor, csv_path, full_monitor, full_csv)


def test_a_check_caught_up_after_resuming_is_counted_once(uninterrupted) -> None:
    """Trainer state after epoch 1, monitor state from before epoch 1's check: the check runs at train start."""
    tmp_path, full_monitor, full_csv = uninterrupted
    checkpoints = tmp_path / "full" / "checkpoints"
    checkpoint = torch.load(checkpoints / "epoch=1.ckpt", weights_only=False)
    key = full_monitor.state_key
    checkpoint["callbacks"][key] = torch.load(checkpoints / "epoch=0.ckpt", weights_only=False)["callbacks"][key]
    torch.save(checkpoint, tmp_path / "missed.ckpt")
    monitor, csv_path = run(tmp_path, "caught_up", ckpt_path=tmp_path / "missed.ckpt")
    assert_same(monitor, csv_path, full_monitor, full_csv)
