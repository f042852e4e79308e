"""Adding the monitors does not change training: same seed, same final weights (and RNG state) without them; the
dynamics monitors also leave the gradients and the submodules' train/eval modes as they found them."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from lightning_stability import StabilityMonitor

from ..helpers import MLP, SMALL_GRID, all_monitors, fit


def train(callbacks: list[pl.Callback], accumulate: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Final weights and CPU RNG state after 3 epochs of a seeded run with ``callbacks``."""
    pl.seed_everything(123)
    model = MLP(dropout=0.3)  # dropout draws from the global RNG at every training step
    # shuffle=True: the sampler draws its seed from the global RNG at every epoch
    fit(callbacks, model, 300, shuffle=True, max_epochs=3, accumulate_grad_batches=accumulate, deterministic=False)
    return {k: v.clone() for k, v in model.state_dict().items()}, torch.get_rng_state()


def assert_same_as_without_callbacks(weights: dict[str, torch.Tensor], rng: torch.Tensor, accumulate: int) -> None:
    reference_weights, reference_rng = train([], accumulate)
    assert weights.keys() == reference_weights.keys()
    for name, value in reference_weights.items():
        assert torch.equal(weights[name], value), f"{name} differs: a monitor changed training"
    assert torch.equal(rng, reference_rng), "a monitor consumed random numbers"
    # and training did move the weights (the comparison is not vacuous)
    pl.seed_everything(123)
    assert not torch.equal(MLP(dropout=0.3).net[0].weight, weights["net.0.weight"])


@pytest.mark.parametrize("accumulate", [1, 2])
def test_same_final_weights_with_and_without_the_monitor(accumulate: int) -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=50)
    weights, rng = train([monitor], accumulate)
    assert monitor.checks_done == 4 and monitor.last_report.num_samples == 300
    assert_same_as_without_callbacks(weights, rng, accumulate)


class Snapshot(pl.Callback):
    """Before the monitors: puts submodules in mixed train/eval modes and records grads, modes and the RNG."""

    def __init__(self) -> None:
        self.before: dict | None = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pl_module.net[0].eval()  # a mixed state the monitors' eval()/restore must reproduce exactly
        self.before = dict(
            grads={n: None if p.grad is None else p.grad.clone() for n, p in pl_module.named_parameters()},
            modes={n: m.training for n, m in pl_module.named_modules()},
            rng=torch.get_rng_state(),
        )


class Verify(pl.Callback):
    """After the monitors: everything the snapshot recorded is as it was."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.verified = 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        before = self.snapshot.before
        assert before is not None and any(g is not None for g in before["grads"].values())
        for name, param in pl_module.named_parameters():
            assert (param.grad is None) == (before["grads"][name] is None), name
            if param.grad is not None:
                assert torch.equal(param.grad, before["grads"][name]), f"{name}.grad changed"
        assert {n: m.training for n, m in pl_module.named_modules()} == before["modes"]
        assert torch.equal(torch.get_rng_state(), before["rng"])
        pl_module.net[0].train()
        self.verified += 1


@pytest.mark.parametrize("accumulate", [1, 2])
def test_same_final_weights_with_and_without_the_monitors(accumulate: int) -> None:
    sharpness, parametrization, gradient_flow = all_monitors(num_samples=64, every_n_steps=2)
    snapshot = Snapshot()
    verify = Verify(snapshot)
    weights, rng = train([snapshot, sharpness, parametrization, gradient_flow, verify], accumulate)
    assert sharpness.checks_done == parametrization.checks_done == verify.verified == 3
    assert gradient_flow.checks_done > 3
    assert_same_as_without_callbacks(weights, rng, accumulate)
