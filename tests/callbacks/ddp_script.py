"""2-process CPU DDP run of the StabilityMonitor, launched by ``test_ddp.py``: ``python ddp_script.py OUT_DIR``.

Lightning's DDP launcher re-runs this file for rank 1. Every rank writes ``OUT_DIR/rank{r}.pt`` with the initial
and final weights, what the monitor computed at each check and its counters.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `tests.callbacks`

import pytorch_lightning as pl
import torch

from lightning_stability import StabilityMonitor
from tests.callbacks.helpers import (
    DDP_MARGIN_BATCH_SIZE,
    DDP_NUM_SAMPLES,
    MLP,
    SMALL_GRID,
    Recorder,
    make_dataset,
    make_loader,
    trainer_kwargs,
)


def main(out_dir: Path) -> None:
    pl.seed_everything(0)
    dataset = make_dataset(DDP_NUM_SAMPLES)
    model = MLP(lr=0.5)
    initial_state = {k: v.clone() for k, v in model.state_dict().items()}
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=DDP_MARGIN_BATCH_SIZE)
    recorder = Recorder(monitor)
    trainer = pl.Trainer(
        **trainer_kwargs(strategy="ddp", devices=2, max_epochs=1, callbacks=[monitor, recorder], deterministic=False)
    )
    trainer.fit(model, make_loader(dataset, batch_size=16))
    assert trainer.world_size == 2
    torch.save(
        dict(
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            initial_state=initial_state,
            final_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            records=recorder.records,
            last_pass=monitor.last_pass.__dict__,
            report=monitor.last_report.to_dict(),
            monitor_state=monitor.state_dict(),
            should_stop=trainer.should_stop,
        ),
        out_dir / f"rank{trainer.global_rank}.pt",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
