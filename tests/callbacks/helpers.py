"""Shared pieces of the StabilityMonitor integration tests (also imported by ``ddp_script.py``)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import theory

NUM_FEATURES = 10
NUM_CLASSES = 3

# A small certify grid (the default one can take seconds per check): the tests compare the monitor against
# `theory.certify` called with the same grid, so this only makes them faster; test_metrics uses the default.
SMALL_GRID: dict[str, Any] = dict(
    zetas=(0.1, 0.3), tau_fractions=(1 / 16,), gammas=(1.0, 2.0), width_fractions=(1 / 8,), partition_size=512
)


# the DDP test (ddp_script.py): an odd N, so the margin pass's DistributedSampler pads rank 1 with a duplicate
DDP_NUM_SAMPLES = 301
DDP_MARGIN_BATCH_SIZE = 64


def make_data(num_samples: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic 3-class data: labels from a noisy linear rule, so a tiny MLP learns part of it per epoch."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, NUM_FEATURES, generator=generator)
    scores = x[:, :NUM_CLASSES] + 0.8 * torch.randn(num_samples, NUM_CLASSES, generator=generator)
    return x, scores.argmax(dim=1)


def make_dataset(num_samples: int = 400, seed: int = 0) -> TensorDataset:
    return TensorDataset(*make_data(num_samples, seed))


def make_loader(dataset, batch_size: int = 32, shuffle: bool = False, **kwargs: Any) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **kwargs)


class MLP(pl.LightningModule):
    """10 → hidden → 3 MLP trained with SGD on cross entropy; optional dropout and validation step."""

    def __init__(self, hidden: int = 16, lr: float = 0.2, dropout: float = 0.0) -> None:
        super().__init__()
        self.lr = lr
        layers: list[nn.Module] = [nn.Linear(NUM_FEATURES, hidden), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, NUM_CLASSES))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def trainer_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        deterministic=True,
        num_sanity_val_steps=0,
    )
    kwargs.update(overrides)
    return kwargs


def hand_margin_pass(
    module: nn.Module, dataset: TensorDataset, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(targets, margins, per-sample losses)`` of ``module`` over ``dataset``, in eval mode, by hand.

    The batches are cut like the monitor's sequential loader so that float32 logits are bit-identical.
    """
    x, y = dataset.tensors
    was_training = module.training
    module.eval()
    with torch.no_grad():
        logits = torch.cat([module(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    module.train(was_training)
    return y, theory.margins(logits, y), theory.per_sample_cross_entropy(logits, y)


class Recorder(pl.Callback):
    """Placed after the monitor: copies what the monitor computed at every check (train start, epoch end)."""

    def __init__(self, monitor) -> None:
        self.monitor = monitor
        self.records: list[dict[str, Any]] = []
        self._seen = 0

    def _record(self, trainer, hook: str) -> None:
        if self.monitor.checks_done == self._seen:
            return
        assert self.monitor.checks_done == self._seen + 1, "more than one check between two hooks"
        self._seen = self.monitor.checks_done
        self.records.append(
            dict(
                hook=hook,
                epoch=trainer.current_epoch,
                metrics=dict(self.monitor.last_metrics),
                margins=self.monitor.last_pass.margins.clone(),
                checks_done=self.monitor.checks_done,
                instability_count=self.monitor.instability_count,
                consecutive_instabilities=self.monitor.consecutive_instabilities,
            )
        )

    def on_fit_start(self, trainer, pl_module) -> None:
        self._seen = self.monitor.checks_done  # after a checkpoint restored the monitor's state

    def on_train_start(self, trainer, pl_module) -> None:
        self._record(trainer, "train_start")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._record(trainer, "epoch_end")
