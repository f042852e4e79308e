"""Checkpoint resume of the three dynamics monitors: their counters continue and their values match an uninterrupted
run (the StabilityMonitor's resume is in test_stability_resume.py, the state_dict round trips in test_base.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl

from lightning_stability import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor

from ..helpers import FrozenMLP, MonitorRecorder, epoch_checkpoints, fit

MAX_EPOCHS = 3
LR = 50.0  # with FrozenMLP's λ_max ≈ 0.8, lr·λ_max/2 > 1 at every check: the unstable counters grow


def monitors() -> tuple[SharpnessMonitor, ParametrizationMonitor, GradientFlowMonitor]:
    return (
        SharpnessMonitor(num_samples=60, seed=3),
        ParametrizationMonitor(num_samples=60),
        GradientFlowMonitor(every_n_steps=4),
    )


def run(tmp_path: Path, name: str, ckpt_path: Path | None = None):
    pl.seed_everything(0)
    model = FrozenMLP(lr=LR)  # real gradients, weights never move: both runs see the same values at each check
    callbacks = monitors()
    recorder = MonitorRecorder(*callbacks)
    checkpoint = epoch_checkpoints(tmp_path / name, save_on_train_epoch_end=True)
    fit(
        [*callbacks, recorder, checkpoint],
        model,
        120,
        batch_size=20,
        ckpt_path=ckpt_path,
        max_epochs=MAX_EPOCHS,
        enable_checkpointing=True,
    )
    return callbacks, recorder


def assert_same(records: list[dict], expected: list[dict]) -> None:
    assert len(records) == len(expected)
    for record, reference in zip(records, expected):
        assert record == pytest.approx(reference, nan_ok=True)


def test_resumed_run_continues_the_counters(tmp_path) -> None:
    full, full_records = run(tmp_path, "full")
    sharpness, parametrization, gradient_flow = full
    assert sharpness.consecutive_unstable == sharpness.unstable_count == MAX_EPOCHS
    assert gradient_flow.checks_done == 5 and gradient_flow.last_logged_step == 16  # steps 0, 4, …, 16 of 18
    assert all(r["stability/gradient_flow/total_norm"] > 0 for r in full_records.records["GradientFlowMonitor"])

    resumed, resumed_records = run(tmp_path, "resumed", ckpt_path=tmp_path / "full" / "epoch=0.ckpt")
    for original, again in zip(full, resumed):
        assert again.state_dict().keys() == original.state_dict().keys()
        for key, value in original.state_dict().items():
            other = again.state_dict()[key]
            assert (other == value).all() if hasattr(value, "shape") else other == value, (type(original), key)
    # the resumed run checked only epochs 1 and 2, with the values of the uninterrupted run
    for name in ("SharpnessMonitor", "ParametrizationMonitor"):
        assert len(resumed_records.records[name]) == MAX_EPOCHS - 1
        assert_same(resumed_records.records[name], full_records.records[name][1:])
    assert resumed_records.records["SharpnessMonitor"][-1]["stability/sharpness/consecutive_unstable"] == MAX_EPOCHS
    assert_same(resumed_records.records["GradientFlowMonitor"], full_records.records["GradientFlowMonitor"][2:])
