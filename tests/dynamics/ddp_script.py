"""2-process CPU DDP run of the three dynamics monitors, launched by ``test_ddp.py``: ``python ddp_script.py OUT``.

Lightning's DDP launcher re-runs this file for rank 1. Every rank writes ``OUT/rank{r}.pt`` with the initial and
final weights, every check's logged metrics per monitor, the values each rank computed itself before rank zero's
were broadcast, and the monitors' states.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `tests.dynamics`

import pytorch_lightning as pl
import torch

from tests.dynamics.helpers import MLP, MonitorRecorder, all_monitors, make_dataset, make_loader, trainer_kwargs

DDP_NUM_SAMPLES = 301  # odd: the DistributedSampler pads rank 1


def main(out_dir: Path) -> None:
    pl.seed_everything(0)
    model = MLP(hidden=12, lr=0.5, dropout=0.2)
    initial_state = {k: v.clone() for k, v in model.state_dict().items()}
    sharpness, parametrization, gradient_flow = all_monitors(num_samples=96, every_n_steps=2)
    recorder = MonitorRecorder(sharpness, parametrization, gradient_flow)
    trainer = pl.Trainer(
        **trainer_kwargs(
            strategy="ddp",
            devices=2,
            max_epochs=2,
            callbacks=[sharpness, parametrization, gradient_flow, recorder],
            deterministic=False,
        )
    )
    trainer.fit(model, make_loader(make_dataset(DDP_NUM_SAMPLES), batch_size=16, shuffle=True))
    assert trainer.world_size == 2
    torch.save(
        dict(
            rank=trainer.global_rank,
            initial_state=initial_state,
            final_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            records=recorder.records,
            own_lambda_max=sharpness.last_estimate.value,
            own_parametrization=parametrization.last_stats[0].to_metrics("own"),
            indices=sharpness.indices,
            states={type(m).__name__: m.state_dict() for m in (sharpness, parametrization, gradient_flow)},
        ),
        out_dir / f"rank{trainer.global_rank}.pt",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
