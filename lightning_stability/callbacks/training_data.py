"""The training samples a monitor evaluates, and evaluating them without disturbing training.

* `find_training_data` — the user's ``dataset=`` or the map-style dataset behind
  ``trainer.train_dataloader``, with its ``collate_fn`` and batch size; errors name the monitor and the fix;
* `fixed_subset`, `load_batches` — a seeded, fixed subset of samples, collated on the device;
* `untouched_training` — eval mode and forked RNG streams inside, every submodule's mode and the RNG
  restored afterwards, so that adding a monitor leaves training exactly as it was.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, WeightedRandomSampler

from ..distributions import MisconfigurationError
from ..lightning_internals import user_sampler

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = [
    "TrainingData",
    "device_transfer",
    "find_training_data",
    "fixed_subset",
    "load_batches",
    "training_sampler_weights",
    "untouched_training",
]


@dataclass(frozen=True)
class TrainingData:
    """A map-style dataset of training samples with the training loader's ``collate_fn`` and batch size
    (``None`` when not known)."""

    dataset: Dataset
    collate_fn: Callable[[list[Any]], Any] | None
    batch_size: int | None

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))


def find_training_data(
    trainer: pl.Trainer, dataset: Dataset | None, owner: str, alternatives: str = "`dataset=` (a map-style dataset)"
) -> TrainingData:
    """``dataset`` if given, else the dataset behind ``trainer.train_dataloader``, checked to be map-style,
    sized and non-empty.

    Raises:
        MisconfigurationError: naming ``owner`` and the fix (pass one of ``alternatives``), if there is no
            single training DataLoader, or the dataset is iterable, has no length or is empty.
    """
    collate_fn, batch_size = None, None
    loader = trainer.train_dataloader
    if isinstance(loader, DataLoader):
        collate_fn, batch_size = loader.collate_fn, loader.batch_size
        if dataset is None:
            dataset = loader.dataset
    if dataset is None:
        raise MisconfigurationError(
            f"{owner} could not find the training dataset: `trainer.train_dataloader` is {type(loader).__name__}, "
            f"not a single DataLoader. Pass {alternatives} to the {owner}."
        )
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        kind = "the IterableDataset " if isinstance(dataset, IterableDataset) else ""
        raise MisconfigurationError(
            f"{owner} evaluates training samples by index and needs a map-style dataset (with `__len__` and "
            f"`__getitem__`), got {kind}{type(dataset).__name__}. Pass {alternatives} to the {owner}."
        )
    if len(dataset) == 0:
        raise MisconfigurationError(f"{owner}: the training dataset is empty; nothing to evaluate.")
    return TrainingData(dataset, collate_fn, batch_size)


def training_sampler_weights(trainer: pl.Trainer) -> Tensor | None:
    """The per-sample weights of the training loader's ``WeightedRandomSampler`` (also behind Lightning's DDP
    wrapper), as float64, or ``None`` if it samples otherwise. Training lowers the sampler-weighted loss
    ``Σ w_k ℓ_k / Σ w_k`` (in expectation over the draws), so that is the loss the theorems' premise is about."""
    loader = trainer.train_dataloader
    sampler = getattr(loader, "sampler", None) if isinstance(loader, DataLoader) else None
    batch_sampler = getattr(loader, "batch_sampler", None)
    if not isinstance(user_sampler(sampler), WeightedRandomSampler):
        sampler = getattr(batch_sampler, "sampler", None)  # a BatchSampler over the weighted sampler
    sampler = user_sampler(sampler)
    if not isinstance(sampler, WeightedRandomSampler):
        return None
    return torch.as_tensor(sampler.weights).detach().to(torch.float64).reshape(-1).cpu()


def fixed_subset(length: int, num_samples: int, seed: int) -> Tensor:
    """Sorted indices of ``min(num_samples, length)`` samples: the first entries of a permutation seeded by ``seed``."""
    permutation = torch.randperm(length, generator=torch.Generator().manual_seed(seed))
    return torch.sort(permutation[: min(num_samples, length)]).values


def device_transfer(trainer: pl.Trainer, pl_module: pl.LightningModule) -> Callable[[Any], Any]:
    """``batch -> batch`` on the model's device in the Trainer's input precision: the one device transfer of
    every monitor's forward (the strategy's ``batch_to_device``, then the precision plugin's ``convert_input``)."""

    def transfer(batch: Any) -> Any:
        return trainer.precision_plugin.convert_input(trainer.strategy.batch_to_device(batch, pl_module.device))

    return transfer


def load_batches(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    data: TrainingData,
    indices: Tensor,
    batch_size: int,
    seed: int,
) -> list[tuple[int, Any]]:
    """``[(size, batch)]``: the samples ``indices`` in chunks of ``batch_size``, collated and on the device.

    Called inside `untouched_training`; the global CPU generator is seeded with ``seed`` first (CUDA
    generators are left alone), so random dataset transforms draw the same subset content at every check, and
    the training RNG is restored afterwards.
    """
    torch.default_generator.manual_seed(seed)
    collate = data.collate_fn or torch.utils.data.default_collate
    transfer = device_transfer(trainer, pl_module)
    batches = []
    for start in range(0, indices.numel(), batch_size):
        chunk = indices[start : start + batch_size].tolist()
        batches.append((len(chunk), transfer(collate([data.dataset[i] for i in chunk]))))
    return batches


@contextmanager
def untouched_training(module: nn.Module) -> Iterator[None]:
    """Eval mode inside; afterwards every submodule's train/eval mode and the random streams restored: torch's
    CPU (and current CUDA device's) generator, NumPy's global generator and Python's ``random`` — so data
    transforms that draw from any of them, run inside, leave training's draws unchanged."""
    modes = [(submodule, submodule.training) for submodule in module.modules()]
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    try:
        module.eval()
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        for submodule, training in modes:
            submodule.train(training)
        random.setstate(python_state)
        np.random.set_state(numpy_state)
