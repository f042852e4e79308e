"""The edge of stability for momentum and Adam, read by the SharpnessMonitor (docs/dynamics.md D1).

Full-batch training of a tanh MLP on standardised ``load_digits`` samples with the square loss (the setting of
Cohen et al. 2021), the SharpnessMonitor at every epoch with ``stop_on_unstable=True, patience=3``:

    python examples/edge_of_stability.py                 # draws docs/images/edge_of_stability.png
    python examples/edge_of_stability.py --epochs 300 --out /tmp/eos.png

Each run's ``stability/sharpness/edge_ratio`` rises to the edge while the loss falls. Momentum (η = 0.4) reaches
1.05 at epoch 100, where the loss spikes once and the ratio falls back to 0.77, then climbs to 1.0 again by epoch 400;
``η λ_max / 2``, what the monitor read before it knew the optimizer, is 1.5 to 2.0 meanwhile. Adam (η = 0.002) rises
to 1.06 near epoch 380 (``η λ_max / 2`` stays near 0.01). Neither run is stopped. The figure is drawn from the
logged values; on 2 CPU cores the two runs take about five minutes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import SharpnessMonitor

OptimizerFactory = Callable[[Any], torch.optim.Optimizer]


def digits(n: int) -> TensorDataset:
    """The first ``n`` ``load_digits`` samples, features standardised, labels as class indices."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x[:n], dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    return TensorDataset(x, torch.tensor(y[:n]))


def square_loss(module: nn.Module, batch: Any) -> Tensor:
    """``(1/2B) Σ_k ‖f(x_k) − e_{y_k}‖²``, the square loss against one-hot targets."""
    inputs, labels = batch
    outputs = module(inputs)
    return 0.5 * ((outputs - nn.functional.one_hot(labels, outputs.shape[1]).to(outputs.dtype)) ** 2).sum(1).mean()


class TanhMLP(pl.LightningModule):
    """``64 → width → width → 10`` with tanh, trained on the square loss by the optimizer ``make_optimizer`` makes."""

    def __init__(self, make_optimizer: OptimizerFactory, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 10)
        )
        self.make_optimizer = make_optimizer

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return square_loss(self, batch)

    def configure_optimizers(self) -> Any:
        return self.make_optimizer(self.parameters())


class Record(pl.Callback):
    """The monitor's values of each check (placed after it in ``callbacks``)."""

    def __init__(self, monitor: SharpnessMonitor) -> None:
        self.monitor, self.rows = monitor, []  # type: ignore[var-annotated]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rows.append(dict(self.monitor.last_metrics))


def digits_run(
    make_optimizer: OptimizerFactory, epochs: int, n: int = 1000, width: int = 64, seed: int = 0, **monitor: Any
) -> tuple[SharpnessMonitor, pl.Trainer, list[dict[str, float]]]:
    """One full-batch run with the SharpnessMonitor at every epoch; its values per check."""
    pl.seed_everything(seed, verbose=False)
    data = digits(n)
    sharpness = SharpnessMonitor(num_samples=n, loss_fn=square_loss, **monitor)
    record = Record(sharpness)
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=[sharpness, record],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(TanhMLP(make_optimizer, width), DataLoader(data, batch_size=n))
    return sharpness, trainer, record.rows


def momentum(lr: float = 0.4) -> OptimizerFactory:
    return lambda params: torch.optim.SGD(params, lr=lr, momentum=0.9)


def adam(lr: float = 2e-3) -> OptimizerFactory:
    return lambda params: torch.optim.Adam(params, lr=lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs/images/edge_of_stability.png")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    for column, (title, factory) in enumerate(
        [("SGD, momentum 0.9, η = 0.4", momentum()), ("Adam, η = 0.002", adam())]
    ):
        monitor, _, rows = digits_run(factory, args.epochs, stop_on_unstable=True, patience=3)
        epochs = range(len(rows))
        axes[0, column].plot(epochs, [r["stability/sharpness/edge_ratio"] for r in rows], label="edge_ratio")
        axes[0, column].plot(epochs, [r["stability/sharpness/lr_lambda_over_2"] for r in rows], label="η λ_max / 2")
        axes[0, column].axhline(1.0, color="k", lw=0.8, ls="--")
        axes[0, column].set_title(title + ("" if monitor.stop_reason is None else " (stopped)"))
        axes[0, column].legend()
        axes[1, column].semilogy(epochs, [r["stability/sharpness/loss"] for r in rows])
        axes[1, column].set_xlabel("epoch (one full-batch step)")
        print(title, "epochs", len(rows), "max edge_ratio", max(r["stability/sharpness/edge_ratio"] for r in rows))
    axes[0, 0].set_ylabel("ratio (1 = edge of stability)")
    axes[1, 0].set_ylabel("training loss (square)")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
