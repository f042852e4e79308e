"""The example classifiers: an MLP with absolute-value activations, and a linear classifier for the demo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from ..activations import AbsoluteValue

__all__ = ["AbsMLP", "AbsoluteValue", "LinearClassifier"]


class _Classifier(pl.LightningModule):
    """Cross-entropy training with torchmetrics train/val accuracy and SGD (optional momentum) or Adam."""

    def __init__(self, num_classes: int, optimizer: str, lr: float, momentum: float, weight_decay: float) -> None:
        super().__init__()
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"`optimizer` must be 'sgd' or 'adam', got {optimizer!r}.")
        if not lr > 0:
            raise ValueError(f"`lr` must be > 0, got {lr}.")
        self.train_accuracy = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_accuracy = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, targets = batch
        logits = self(inputs)
        loss = nn.functional.cross_entropy(logits, targets)
        self.train_accuracy(logits, targets)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train_acc", self.train_accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        logits = self(inputs)
        self.val_accuracy(logits, targets)
        self.log("val_loss", nn.functional.cross_entropy(logits, targets), prog_bar=True, sync_dist=True)
        self.log("val_acc", self.val_accuracy, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hparams: Any = self.hparams
        if hparams.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=hparams.lr, weight_decay=hparams.weight_decay)
        return torch.optim.SGD(
            self.parameters(), lr=hparams.lr, momentum=hparams.momentum, weight_decay=hparams.weight_decay
        )


class AbsMLP(_Classifier):
    """Multilayer perceptron ``Linear → |·| → … → Linear`` trained with cross entropy.

    Args:
        input_dim: number of input features (784 for MNIST; inputs are flattened).
        hidden_dims: widths of the hidden layers (depth = their number).
        num_classes: ``K``.
        optimizer: ``"sgd"`` or ``"adam"``.
        lr: learning rate.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 penalty.

    Example:

        >>> model = AbsMLP(input_dim=784, hidden_dims=(128, 128), num_classes=10)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden_dims: Sequence[int] = (256, 256),
        num_classes: int = 10,
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(num_classes, optimizer, lr, momentum, weight_decay)
        self.save_hyperparameters()
        if input_dim < 1 or num_classes < 2 or any(width < 1 for width in hidden_dims):
            raise ValueError(
                f"AbsMLP needs input_dim >= 1, hidden widths >= 1 and num_classes >= 2, got {input_dim}, "
                f"{list(hidden_dims)}, {num_classes}."
            )
        layers: list[nn.Module] = []
        width = input_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), AbsoluteValue()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.net(inputs.flatten(1))


class LinearClassifier(_Classifier):
    """An affine classifier ``z = W x + b``, optionally started from given weights (the instability demo).

    Args:
        input_dim: number of input features.
        num_classes: ``K``.
        initial_weight: optional ``[K, input_dim]`` starting weights; ``initial_bias`` likewise ``[K]``.
        optimizer, lr, momentum, weight_decay: as for `AbsMLP`.
    """

    def __init__(
        self,
        input_dim: int = 1,
        num_classes: int = 2,
        initial_weight: list[list[float]] | None = None,
        initial_bias: list[float] | None = None,
        optimizer: str = "sgd",
        lr: float = 0.5,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(num_classes, optimizer, lr, momentum, weight_decay)
        self.save_hyperparameters()
        self.linear = nn.Linear(input_dim, num_classes)
        for name, values in (("weight", initial_weight), ("bias", initial_bias)):
            if values is not None:
                _set_parameter(getattr(self.linear, name), values, f"initial_{name}")

    def forward(self, inputs: Tensor) -> Tensor:
        return self.linear(inputs.flatten(1))


def _set_parameter(parameter: nn.Parameter, values: Any, option: str) -> None:
    """Copy ``values`` into ``parameter``; a ``ValueError`` naming ``option`` if the shapes differ."""
    tensor = torch.tensor(values, dtype=torch.float32)
    if tensor.shape != parameter.shape:
        raise ValueError(f"`{option}` must have shape {tuple(parameter.shape)}, got {tuple(tensor.shape)}.")
    with torch.no_grad():
        parameter.copy_(tensor)
