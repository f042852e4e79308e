"""Adding the monitor does not change training: same seed, same final weights (and RNG state) without it."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from lightning_stability import StabilityMonitor

from .helpers import MLP, SMALL_GRID, make_dataset, make_loader, trainer_kwargs


def train(with_monitor: bool, accumulate: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, StabilityMonitor | None]:
    pl.seed_everything(123)
    model = MLP(dropout=0.3)  # dropout draws from the global RNG at every training step
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=50) if with_monitor else None
    trainer = pl.Trainer(
        **trainer_kwargs(
            max_epochs=3,
            callbacks=[monitor] if monitor else [],
            accumulate_grad_batches=accumulate,
            deterministic=False,
        )
    )
    # shuffle=True: the sampler draws its seed from the global RNG at every epoch
    trainer.fit(model, make_loader(make_dataset(300), batch_size=32, shuffle=True))
    return {k: v.clone() for k, v in model.state_dict().items()}, torch.get_rng_state(), monitor


@pytest.mark.parametrize("accumulate", [1, 2])
def test_same_final_weights_with_and_without_the_monitor(accumulate: int) -> None:
    weights, rng, monitor = train(True, accumulate)
    assert monitor.checks_done == 4 and monitor.last_metrics["stability/num_samples"] == 300
    reference_weights, reference_rng, _ = train(False, accumulate)
    assert weights.keys() == reference_weights.keys()
    for name, value in reference_weights.items():
        assert torch.equal(weights[name], value), f"{name} differs: the monitor changed training"
    assert torch.equal(rng, reference_rng), "the monitor consumed random numbers"
    # and training did move the weights (the comparison is not vacuous)
    pl.seed_everything(123)
    assert not torch.equal(MLP(dropout=0.3).net[0].weight, weights["net.0.weight"])
