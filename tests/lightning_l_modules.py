"""A LightningModule and a LightningDataModule written with ``import lightning as L`` (not ``pytorch_lightning``),
for the ``lightning-stability fit`` tests (tests/test_cli.py): a linear layer on 96 samples of 16 features (a
flattened 4 × 4 picture, so that the blame grid can draw them)."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

NUM_FEATURES = 16
NUM_CLASSES = 3


class TinyModel(L.LightningModule):
    def __init__(self, lr: float = 0.5) -> None:
        super().__init__()
        self.lr = lr
        self.linear = nn.Linear(NUM_FEATURES, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class TinyData(L.LightningDataModule):
    def __init__(self, num_samples: int = 96) -> None:
        super().__init__()
        self.num_samples = num_samples

    def setup(self, stage: str) -> None:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(self.num_samples, NUM_FEATURES, generator=generator)
        self.dataset = TensorDataset(x, x[:, :NUM_CLASSES].argmax(dim=1))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=32)
