"""Shared pieces of the training-dynamics monitor tests (also imported by ``ddp_script.py``)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.func import functional_call

from lightning_stability import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor
from tests.callbacks.helpers import MLP, NUM_CLASSES, NUM_FEATURES, make_dataset, make_loader, trainer_kwargs

__all__ = [
    "MLP",
    "NUM_CLASSES",
    "NUM_FEATURES",
    "EvaluateOnly",
    "FrozenMLP",
    "MonitorRecorder",
    "all_monitors",
    "explicit_hessian",
    "make_dataset",
    "make_loader",
    "subset_tensors",
    "trainer_kwargs",
]


def explicit_hessian(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The full Hessian of ``cross_entropy(model(inputs), targets)`` in the flattened trainable parameters."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    flat = torch.cat([p.detach().reshape(-1) for _, p in named])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for name, p in named:
            params[name] = vector[start : start + p.numel()].reshape(p.shape)
            start += p.numel()
        return nn.functional.cross_entropy(functional_call(model, params, (inputs,)), targets)

    was_training = model.training
    model.eval()
    hessian = torch.autograd.functional.hessian(loss, flat)
    model.train(was_training)
    return hessian


def subset_tensors(dataset, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = dataset.tensors
    return x[indices], y[indices]


class EvaluateOnly(torch.optim.SGD):
    """SGD that evaluates the closure (loss, backward, the hooks) but never moves the weights."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if closure is None:
            raise ValueError("EvaluateOnly needs the training closure.")
        with torch.enable_grad():
            return closure()


class FrozenMLP(MLP):
    """An MLP with real gradients whose weights never move while the optimizer reports a real learning rate.

    Its sharpness is the same at every check, so ``lr · λ_max / 2`` changes only with the learning rate.
    """

    def __init__(self, lr: float, lr_factors: list[float] | None = None, **kwargs: Any) -> None:
        super().__init__(lr=lr, **kwargs)
        self.lr_factors = lr_factors

    def configure_optimizers(self) -> Any:
        optimizer = EvaluateOnly(self.parameters(), lr=self.lr)
        if self.lr_factors is None:
            return optimizer
        factors = self.lr_factors
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: factors[min(epoch, len(factors) - 1)])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def all_monitors(
    num_samples: int = 64, every_n_steps: int = 3
) -> tuple[SharpnessMonitor, ParametrizationMonitor, GradientFlowMonitor]:
    return (
        SharpnessMonitor(num_samples=num_samples),
        ParametrizationMonitor(num_samples=num_samples),
        GradientFlowMonitor(every_n_steps=every_n_steps),
    )


class MonitorRecorder(pl.Callback):
    """Placed after the monitors: copies each monitor's ``last_metrics`` whenever its ``checks_done`` grew."""

    def __init__(self, *monitors: Any) -> None:
        self.monitors = monitors
        self.records: dict[str, list[dict[str, float]]] = {type(m).__name__: [] for m in monitors}
        self._seen: dict[str, int] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seen = {type(m).__name__: m.checks_done for m in self.monitors}

    def _record(self) -> None:
        for monitor in self.monitors:
            name = type(monitor).__name__
            if monitor.checks_done != self._seen[name]:
                assert monitor.checks_done == self._seen[name] + 1, f"{name} checked twice between two hooks"
                self._seen[name] = monitor.checks_done
                self.records[name].append(dict(monitor.last_metrics))

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self._record()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record()
