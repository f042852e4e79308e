"""Pieces shared by the training-dynamics monitors: fixed sample subsets, an untouched-training context, logging."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

__all__ = [
    "broadcast_metrics",
    "check_positive_int",
    "fixed_subset",
    "load_batches",
    "log_epoch_metrics",
    "training_dataset",
    "untouched_training",
]


def check_positive_int(owner: str, name: str, value: Any) -> None:
    """Raise a MisconfigurationException unless ``value`` is an ``int >= 1``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise MisconfigurationException(f"{owner}: `{name}` must be a positive integer, got {value!r}.")


def training_dataset(trainer: pl.Trainer, dataset: Dataset | None, owner: str) -> tuple[Dataset, Callable | None]:
    """``(dataset, collate_fn)``: ``dataset`` if given, else the map-style dataset behind the train dataloader."""
    collate_fn = None
    loader = trainer.train_dataloader
    if isinstance(loader, DataLoader):
        collate_fn = loader.collate_fn
        if dataset is None:
            dataset = loader.dataset
    if dataset is None:
        raise MisconfigurationException(
            f"{owner} could not find the training dataset: `trainer.train_dataloader` is {type(loader).__name__}, "
            f"not a single DataLoader. Pass `dataset=` (a map-style dataset of training samples) to the {owner}."
        )
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        raise MisconfigurationException(
            f"{owner} draws a fixed subset of samples by index and needs a map-style dataset with a length, got "
            f"{type(dataset).__name__}. Pass `dataset=` (a map-style dataset of training samples) to the {owner}."
        )
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise MisconfigurationException(f"{owner}: the training dataset is empty.")
    return dataset, collate_fn


def fixed_subset(length: int, num_samples: int, seed: int) -> Tensor:
    """Sorted indices of ``min(num_samples, length)`` samples: the first entries of a permutation seeded by ``seed``."""
    permutation = torch.randperm(length, generator=torch.Generator().manual_seed(seed))
    return torch.sort(permutation[: min(num_samples, length)]).values


def load_batches(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    dataset: Dataset,
    indices: Tensor,
    collate_fn: Callable | None,
    batch_size: int,
    seed: int,
) -> list[tuple[int, Any]]:
    """``[(size, batch)]``: the samples ``indices`` in chunks of ``batch_size``, collated and on the device.

    Called inside :func:`untouched_training`; the global CPU generator is seeded with ``seed`` first (CUDA
    generators are left alone), so random dataset transforms draw the same subset content at every check, and
    the training RNG is restored afterwards.
    """
    torch.default_generator.manual_seed(seed)
    collate = collate_fn or torch.utils.data.default_collate
    batches = []
    for start in range(0, indices.numel(), batch_size):
        chunk = indices[start : start + batch_size].tolist()
        batch = trainer.strategy.batch_to_device(collate([dataset[i] for i in chunk]), pl_module.device)
        batches.append((len(chunk), trainer.precision_plugin.convert_input(batch)))
    return batches


@contextmanager
def untouched_training(module: nn.Module) -> Iterator[None]:
    """Eval mode inside; afterwards every submodule's train/eval mode and the CPU (and current CUDA) RNG restored."""
    modes = [(submodule, submodule.training) for submodule in module.modules()]
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    try:
        module.eval()
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        for submodule, training in modes:
            submodule.train(training)


def broadcast_metrics(trainer: pl.Trainer, metrics: dict[str, float]) -> dict[str, float]:
    """Rank zero's metrics on every rank (each rank computed the same ones; this makes them bit-identical)."""
    if trainer.world_size == 1:
        return metrics
    return trainer.strategy.broadcast(metrics, src=0)


def log_epoch_metrics(pl_module: pl.LightningModule, metrics: dict[str, float]) -> None:
    """``pl_module.log`` every metric at epoch end as a float64 tensor.

    The values are identical on every rank (broadcast); under DDP ``sync_dist`` averages identical values, which is
    exact, and keeps Lightning from warning that epoch-level values are not synchronised (as the StabilityMonitor).
    """
    trainer = pl_module.trainer
    dtype = torch.float32 if pl_module.device.type == "mps" else torch.float64
    for name, value in metrics.items():
        pl_module.log(
            name,
            torch.tensor(value, dtype=dtype, device=pl_module.device),
            on_step=False,
            on_epoch=True,
            sync_dist=trainer.world_size > 1,
            logger=bool(trainer.loggers),
            batch_size=1,
        )
