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
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

from ..distributions import MisconfigurationError
from ..lightning_internals import user_sampler

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = [
    "SamplerSupport",
    "TrainingData",
    "device_transfer",
    "find_training_data",
    "fixed_subset",
    "load_batches",
    "training_sampler",
    "training_sampler_support",
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


def training_sampler(trainer: pl.Trainer) -> Any:
    """The sampler that decides which samples the training loader draws: the batch sampler's ``sampler`` when
    the batch sampler is torch's `BatchSampler` (the usual case), the loader's ``sampler`` without automatic
    batching, a custom batch sampler itself otherwise; the user's own behind Lightning's
    ``DistributedSamplerWrapper``. ``None`` if ``trainer.train_dataloader`` is not one DataLoader."""
    loader = trainer.train_dataloader
    if not isinstance(loader, DataLoader):
        return None
    batch_sampler = loader.batch_sampler
    if batch_sampler is None:
        return user_sampler(loader.sampler)
    if isinstance(batch_sampler, BatchSampler):
        return user_sampler(batch_sampler.sampler)
    return batch_sampler


def training_sampler_weights(trainer: pl.Trainer) -> Tensor | None:
    """The per-sample weights of the training loader's ``WeightedRandomSampler`` (also behind Lightning's DDP
    wrapper), as float64, or ``None`` if it samples otherwise. Training lowers the sampler-weighted loss
    ``Σ w_k ℓ_k / Σ w_k`` (in expectation over the draws), so that is the loss the theorems' premise is about."""
    sampler = training_sampler(trainer)
    if not isinstance(sampler, WeightedRandomSampler):
        return None
    return torch.as_tensor(sampler.weights).detach().to(torch.float64).reshape(-1).cpu()


@dataclass(frozen=True)
class SamplerSupport:
    """Which samples of the training dataset the training sampler draws from (docs/guide.md, "Which samples").

    Attributes:
        indices: the sampler's dataset indices, ascending and each once, or ``None``: every sample of the dataset.
        counts: how often each of ``indices`` comes per epoch when the sampler lists some more than once
            (``None``: once each), the weights ``μ`` of the loss training lowers.
        unknown: the class name of a sampler whose support cannot be known (a custom ``Sampler``): the monitor
            refuses it at fit start unless ``dataset=`` or ``weights=`` says what to certify.
    """

    indices: Tensor | None = None
    counts: Tensor | None = None
    unknown: str | None = None


_INDEX_LISTS = (list, tuple, range, Tensor, np.ndarray)
"""Samplers that are plain index lists: a DataLoader iterates ``sampler=train_idx`` as the indices themselves."""


def training_sampler_support(trainer: pl.Trainer, length: int, owner: str) -> SamplerSupport:
    """The support of the training sampler over a dataset of ``length`` samples (`SamplerSupport`).

    * ``SequentialSampler``, ``RandomSampler``: positions ``0 … len(data_source) − 1`` — every sample when
      ``data_source`` is the dataset (the DataLoader's default), else the first ``len(data_source)``;
    * ``DistributedSampler`` (Lightning's replacement of the default sampler under DDP), ``WeightedRandomSampler``
      (its weights are ``μ``, `training_sampler_weights`): every sample;
    * ``SubsetRandomSampler`` and an index list passed as ``sampler=``: their indices (the usual train/validation
      split of one dataset);
    * anything else: unknown.

    Raises:
        MisconfigurationError: naming ``owner``, if the sampler lists an index outside the dataset.
    """
    sampler = training_sampler(trainer)
    if sampler is None or isinstance(sampler, DistributedSampler | WeightedRandomSampler):
        return SamplerSupport()
    if isinstance(sampler, SequentialSampler | RandomSampler):
        size = len(sampler.data_source)
        return SamplerSupport() if size >= length else SamplerSupport(torch.arange(size))
    if isinstance(sampler, SubsetRandomSampler):
        listed = torch.as_tensor(list(sampler.indices), dtype=torch.long).reshape(-1)
    elif isinstance(sampler, _INDEX_LISTS):
        listed = torch.as_tensor(np.asarray(sampler), dtype=torch.long).reshape(-1)
    else:
        return SamplerSupport(unknown=type(sampler).__name__)
    if listed.numel() and (int(listed.min()) < 0 or int(listed.max()) >= length):
        raise MisconfigurationError(
            f"{owner}: the training sampler lists sample {int(listed.min()) if int(listed.min()) < 0 else int(listed.max())}"
            f" but the training dataset has {length} samples (indices 0 … {length - 1})."
        )
    indices, counts = torch.unique(listed, sorted=True, return_counts=True)
    if indices.numel() == length and bool((counts == 1).all()):
        return SamplerSupport()
    return SamplerSupport(indices, None if bool((counts == 1).all()) else counts.to(torch.float64))


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
