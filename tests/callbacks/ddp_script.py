"""2-process CPU DDP runs, launched by ``test_ddp.py``: ``python ddp_script.py SCENARIO OUT_DIR``.

``SCENARIO`` is ``stability`` (the StabilityMonitor, one epoch; its margin files and ``samples.csv`` go to
``OUT_DIR/margins``), ``subset`` (its statistical mode, two epochs), ``sampler`` (training through a
WeightedRandomSampler, one epoch) or ``dynamics`` (the three dynamics monitors in one
run, two epochs). Lightning's DDP launcher re-runs this file, with the same arguments, for rank 1. Every rank writes
``OUT_DIR/rank{r}.pt`` with its rank, the world size, the initial and final weights and what the scenario records:
for ``stability`` what the monitor computed at each check and its state; for ``dynamics`` every check's logged
metrics per monitor, the values each rank computed itself before rank zero's were broadcast, and the states.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `tests.helpers`

import pytorch_lightning as pl
import torch

from lightning_stability import StabilityMonitor
from tests.helpers import (
    DDP_MARGIN_BATCH_SIZE,
    DDP_NUM_SAMPLES,
    MLP,
    SMALL_GRID,
    MonitorRecorder,
    Recorder,
    all_monitors,
    fit,
    make_dataset,
)

# a scenario builds (model, callbacks, fit options, what to save once the run is over)
Scenario = tuple[pl.LightningModule, list[pl.Callback], dict[str, Any], Callable[[pl.Trainer], dict[str, Any]]]


def stability() -> Scenario:
    model = MLP(lr=0.5)
    monitor = StabilityMonitor(
        grid=SMALL_GRID, batch_size=DDP_MARGIN_BATCH_SIZE, save_margins=Path(sys.argv[2]) / "margins"
    )
    recorder = Recorder(monitor)

    def results(trainer: pl.Trainer) -> dict[str, Any]:
        return dict(
            records=recorder.records,
            last_pass=monitor.last_pass.__dict__,
            report=monitor.last_report.to_dict(),
            monitor_state=monitor.state_dict(),
            should_stop=trainer.should_stop,
            samples=monitor.sample_dynamics().columns(),
        )

    return model, [monitor, recorder], dict(max_epochs=1, shuffle=False), results


def dynamics() -> Scenario:
    model = MLP(hidden=12, lr=0.5, dropout=0.2)
    sharpness, parametrization, gradient_flow = monitors = all_monitors(num_samples=96, every_n_steps=2)
    recorder = MonitorRecorder(*monitors)

    def results(trainer: pl.Trainer) -> dict[str, Any]:
        return dict(
            records=recorder.records,
            own_lambda_max=sharpness.last_estimate.value,
            own_parametrization=parametrization.last_stats[0].to_metrics("own"),
            indices=sharpness.indices,
            states={type(m).__name__: m.state_dict() for m in monitors},
        )

    return model, [*monitors, recorder], dict(max_epochs=2, shuffle=True), results


def subset() -> Scenario:
    """The statistical mode: subset checks (start, epoch 0) and a full one (epoch 1)."""
    model = MLP(lr=0.5)
    monitor = StabilityMonitor(
        grid=SMALL_GRID, batch_size=DDP_MARGIN_BATCH_SIZE, subset_size=150, subset_seed=5, full_every_n_epochs=2
    )
    recorder = Recorder(monitor)

    def results(trainer: pl.Trainer) -> dict[str, Any]:
        return dict(records=recorder.records, monitor_state=monitor.state_dict(), cost=monitor.last_cost)

    return model, [monitor, recorder], dict(max_epochs=2, shuffle=False), results


SAMPLER_WEIGHTS = 1.0 + (torch.arange(DDP_NUM_SAMPLES) % 3 == 0).double() * 3  # every third sample 4× as likely


def sampler() -> Scenario:
    """Training through a WeightedRandomSampler, which Lightning wraps in its DistributedSamplerWrapper."""
    model = MLP(lr=0.5)
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=DDP_MARGIN_BATCH_SIZE, check_at_start=False)
    weighted = torch.utils.data.WeightedRandomSampler(SAMPLER_WEIGHTS, num_samples=DDP_NUM_SAMPLES)
    loader = torch.utils.data.DataLoader(make_dataset(DDP_NUM_SAMPLES), batch_size=16, sampler=weighted)

    def results(trainer: pl.Trainer) -> dict[str, Any]:
        wrapper = type(trainer.train_dataloader.sampler).__name__
        return dict(weights_source=monitor.weights_source, metrics=monitor.last_metrics, sampler_class=wrapper)

    return model, [monitor], dict(max_epochs=1, data=loader), results


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "stability": stability,
    "dynamics": dynamics,
    "subset": subset,
    "sampler": sampler,
}


def main(scenario: str, out_dir: Path) -> None:
    pl.seed_everything(0)
    model, callbacks, options, results = SCENARIOS[scenario]()
    initial_state = {k: v.clone() for k, v in model.state_dict().items()}
    options.setdefault("data", DDP_NUM_SAMPLES)
    trainer = fit(callbacks, model, batch_size=16, strategy="ddp", devices=2, deterministic=False, **options)
    assert trainer.world_size == 2
    torch.save(
        dict(
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            initial_state=initial_state,
            final_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            **results(trainer),
        ),
        out_dir / f"rank{trainer.global_rank}.pt",
    )


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
