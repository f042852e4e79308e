"""2-process CPU DDP (gloo): every rank ends with the same margins and report, equal to a 1-process run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from lightning_stability import StabilityMonitor, theory

from .helpers import (
    DDP_MARGIN_BATCH_SIZE,
    DDP_NUM_SAMPLES,
    MLP,
    SMALL_GRID,
    Recorder,
    hand_margin_pass,
    make_dataset,
    make_loader,
    trainer_kwargs,
)

SCRIPT = Path(__file__).with_name("ddp_script.py")
REPO = Path(__file__).resolve().parents[2]
# differ between two checks of the same weights only through the previous check
RELATIVE = ("stability/flip_forgotten", "stability/flip_learned", "stability/instability", "stability/loss_rose")


def single_process_records(state: dict) -> list[dict]:
    """A 1-process run with the given weights and lr = 0: its start and epoch checks see exactly those weights."""
    model = MLP(lr=0.0)
    model.load_state_dict(state)
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=DDP_MARGIN_BATCH_SIZE)
    recorder = Recorder(monitor)
    trainer = pl.Trainer(**trainer_kwargs(max_epochs=1, callbacks=[monitor, recorder]))
    trainer.fit(model, make_loader(make_dataset(DDP_NUM_SAMPLES), batch_size=16))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items()), "lr = 0 must keep the weights"
    return recorder.records


def without(metrics: dict[str, float], keys=RELATIVE + ("stability/check_epoch",)) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in keys}


def test_ddp_two_processes_gather_the_whole_training_set(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("MASTER_PORT", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"DDP run failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}

    # the same report on every rank, covering every sample once (rank 1's padding duplicate removed)
    zero, one = ranks
    for key in ("indices", "targets", "margins", "losses"):
        assert torch.equal(zero["last_pass"][key], one["last_pass"][key]), key
    assert torch.equal(zero["last_pass"]["indices"], torch.arange(DDP_NUM_SAMPLES))
    assert zero["report"] == one["report"]
    assert zero["report"]["num_samples"] == DDP_NUM_SAMPLES
    assert [r["hook"] for r in zero["records"]] == ["train_start", "epoch_end"]
    for a, b in zip(zero["records"], one["records"], strict=True):
        assert a["metrics"] == b["metrics"]
        assert torch.equal(a["margins"], b["margins"])
    assert zero["monitor_state"]["checks_done"] == one["monitor_state"]["checks_done"] == 2
    assert zero["should_stop"] == one["should_stop"] is False
    # DDP kept the replicas identical and training moved the weights
    assert all(torch.equal(v, one["final_state"][k]) for k, v in zero["final_state"].items())
    assert not all(torch.equal(v, zero["initial_state"][k]) for k, v in zero["final_state"].items())

    # equal to a 1-process run on the same data and weights
    dataset = make_dataset(DDP_NUM_SAMPLES)
    for ddp_record, state in ((zero["records"][0], zero["initial_state"]), (zero["records"][1], zero["final_state"])):
        model = MLP()
        model.load_state_dict(state)
        _, margins, _ = hand_margin_pass(model, dataset, DDP_MARGIN_BATCH_SIZE)
        assert torch.equal(ddp_record["margins"], margins)
    start, end = single_process_records(zero["initial_state"]), single_process_records(zero["final_state"])
    assert torch.equal(start[0]["margins"], zero["records"][0]["margins"])
    assert start[0]["metrics"] == zero["records"][0]["metrics"]
    for single in (end[0], end[1]):
        assert torch.equal(single["margins"], zero["records"][1]["margins"])
        assert without(single["metrics"]) == without(zero["records"][1]["metrics"])
    forgotten, learned = theory.flip_masses(zero["records"][0]["margins"], zero["records"][1]["margins"])
    assert zero["records"][1]["metrics"]["stability/flip_forgotten"] == forgotten
    assert zero["records"][1]["metrics"]["stability/flip_learned"] == learned
