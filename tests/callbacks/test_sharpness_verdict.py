"""The SharpnessMonitor's verdict on whole runs (callbacks/sharpness.py, docs/dynamics.md D1): full-batch least
squares, where the Hessian ``H = 2XᵀX/N`` is known, so each optimizer's step size can be put at a chosen
``edge_ratio``. At the edge — plain gradient descent at ``r = 0.95``, heavy ball at ``r = 0.95`` (where
``η·λ_max/2 = 1.8``, which the monitor read as unstable before it knew the optimizer), Adam hovering at ``r ≈ 1``
— a run with ``stop_on_unstable=True, patience=3`` goes to its end while the loss falls; a step size three times
beyond the edge is stopped before its loss is non-finite."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import SharpnessMonitor

N, D = 64, 8
RATIO = "stability/sharpness/edge_ratio"
LOSS = "stability/sharpness/loss"


def data() -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(N, D, generator=generator) * torch.linspace(0.3, 2.0, D)
    targets = inputs @ torch.randn(D, 1, generator=generator) + 0.1 * torch.randn(N, 1, generator=generator)
    return TensorDataset(inputs, targets)


def lambda_max() -> float:
    inputs, _ = data().tensors
    return float(torch.linalg.eigvalsh(2 * inputs.T @ inputs / N)[-1])


def square_loss(module: nn.Module, batch) -> torch.Tensor:
    inputs, targets = batch
    return nn.functional.mse_loss(module(inputs), targets)


class LeastSquares(pl.LightningModule):
    def __init__(self, optimizer: str, lr: float, **options) -> None:
        super().__init__()
        self.linear = nn.Linear(D, 1, bias=False)
        self.optimizer, self.lr, self.options = optimizer, lr, options

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.linear(inputs)

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        return square_loss(self, batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return getattr(torch.optim, self.optimizer)(self.parameters(), lr=self.lr, **self.options)


class Checks(pl.Callback):
    """Every check's values, after the monitor's."""

    def __init__(self, monitor: SharpnessMonitor) -> None:
        self.monitor, self.values = monitor, []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.values.append(dict(self.monitor.last_metrics))


def run(optimizer: str, lr: float, epochs: int, **options) -> tuple[pl.Trainer, SharpnessMonitor, list[dict]]:
    pl.seed_everything(0)
    monitor = SharpnessMonitor(num_samples=N, loss_fn=square_loss, stop_on_unstable=True, patience=3)
    checks = Checks(monitor)
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=[monitor, checks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(LeastSquares(optimizer, lr, **options), DataLoader(data(), batch_size=N))
    return trainer, monitor, checks.values


@pytest.mark.parametrize(
    ("optimizer", "threshold", "options"),
    [("SGD", 2.0, {}), ("SGD", 2 + 2 * 0.9, {"momentum": 0.9})],
    ids=["gradient descent", "heavy ball"],
)
def test_at_the_edge_a_run_goes_to_its_end(optimizer: str, threshold: float, options: dict) -> None:
    lr = 0.95 * threshold / lambda_max()  # r = η λ_max / T = 0.95
    trainer, monitor, checks = run(optimizer, lr, 40, **options)
    assert trainer.current_epoch == 40 and monitor.stop_reason is None and monitor.unstable_count == 0
    assert [check[RATIO] for check in checks] == pytest.approx([0.95] * 40, rel=2e-3)
    assert checks[-1][LOSS] < checks[0][LOSS] / 10
    if options:  # the ratio the monitor read before it knew the optimizer: far above 1
        assert lr * lambda_max() / 2 == pytest.approx(1.805, rel=1e-3)


def test_adam_hovers_at_its_edge_and_goes_to_its_end() -> None:
    trainer, monitor, checks = run("Adam", 0.05, 150, betas=(0.9, 0.9))
    assert trainer.current_epoch == 150 and monitor.stop_reason is None
    ratios = [check[RATIO] for check in checks]
    assert ratios[0] < 0.5 and 0.9 < max(ratios[-20:]) < 1.1  # the preconditioned sharpness rose to the edge
    assert checks[-1][LOSS] < checks[0][LOSS] / 100


def test_a_step_size_beyond_the_edge_is_stopped_before_the_loss_is_not_finite() -> None:
    lr = 3.0 * (2 + 2 * 0.9) / lambda_max()  # r = 3
    trainer, monitor, checks = run("SGD", lr, 30, momentum=0.9)
    assert monitor.stop_reason is not None and "edge ratio" in monitor.stop_reason
    assert trainer.current_epoch < 30 and len(checks) == 3  # patience 3: the third unstable check stops
    assert all(check[RATIO] == pytest.approx(3.0, rel=2e-3) for check in checks)
    assert all(math.isfinite(check[LOSS]) for check in checks) and checks[-1][LOSS] > checks[0][LOSS]
