"""The margin pass's loaders: every sample keeps its dataset index through a sequential (DDP-sharded) loader, or
its position in a loader of the user's."""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, SequentialSampler

from ..distributions import MisconfigurationError

__all__ = ["IndexedCollate", "IndexedDataset", "margin_dataloader", "positioned_loader"]


class IndexedDataset(Dataset):
    """Map-style view of a dataset that yields ``(index, item)`` so every sample keeps its identity."""

    def __init__(self, dataset: Dataset) -> None:
        if isinstance(dataset, IterableDataset):
            raise MisconfigurationError(
                "StabilityMonitor needs a map-style dataset (with `__len__` and `__getitem__`) to compute every "
                f"training sample's margin exactly, got the IterableDataset {type(dataset).__name__}. Pass "
                "`dataset=` (a map-style dataset of the training samples) or `dataloader=` (a finite loader) "
                "to the StabilityMonitor."
            )
        try:
            self.length = len(cast(Sized, dataset))
        except TypeError:
            raise MisconfigurationError(
                f"StabilityMonitor needs a dataset with a length; {type(dataset).__name__} has no `__len__`. "
                "Pass `dataset=` or `dataloader=` to the StabilityMonitor."
            ) from None
        if self.length == 0:
            raise MisconfigurationError("StabilityMonitor got an empty training dataset; nothing to certify.")
        self.dataset = dataset

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


class IndexedCollate:
    """Collate ``(index, item)`` pairs into ``(LongTensor of indices, collate_fn(items))`` (picklable)."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any] | None) -> None:
        self.collate_fn = collate_fn or torch.utils.data.default_collate

    def __call__(self, pairs: list[tuple[int, Any]]) -> tuple[Tensor, Any]:
        indices = torch.tensor([index for index, _ in pairs], dtype=torch.long)
        return indices, self.collate_fn([item for _, item in pairs])


def margin_dataloader(
    dataset: Dataset,
    batch_size: int,
    *,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    num_workers: int = 0,
    world_size: int = 1,
    rank: int = 0,
    indices: Tensor | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """A sequential loader over ``dataset`` yielding ``(indices, batch)``; sharded without shuffling for DDP.

    With ``indices`` (ascending dataset indices) it visits only those samples, rank ``r`` of ``w`` taking every
    ``w``-th of them from the ``r``-th. ``pin_memory`` (for a CUDA model) puts batches in page-locked memory so
    their copies to the device can overlap with the forward passes. It owns a fixed-seed generator, so creating its iterator never draws from
    the global RNG (a DataLoader iterator takes its base seed from its generator, or from the global RNG when it
    has none).
    """
    indexed = IndexedDataset(dataset)
    if indices is not None:
        sampler: Any = indices[rank::world_size].tolist()
    elif world_size > 1:
        sampler = DistributedSampler(indexed, num_replicas=world_size, rank=rank, shuffle=False)
    else:
        sampler = SequentialSampler(indexed)
    return DataLoader(
        indexed,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=IndexedCollate(collate_fn),
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
        drop_last=False,
        pin_memory=pin_memory,
    )


def positioned_loader(loader: DataLoader) -> Any:
    """Wrap a user loader so that it yields ``(positions, batch)``."""

    class _Positioned:
        def __init__(self, inner: DataLoader) -> None:
            self.inner = inner

        def __iter__(self) -> Any:
            start = 0
            for batch in self.inner:
                size = _batch_size(batch)
                yield torch.arange(start, start + size), batch
                start += size

    return _Positioned(loader)


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Tensor):
        return batch.shape[0]
    if isinstance(batch, list | tuple) and batch:
        return _batch_size(batch[-1] if isinstance(batch[-1], Tensor) else batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    raise MisconfigurationError(
        "StabilityMonitor could not tell the batch size of a `dataloader=` batch; yield tensors, tuples or dicts "
        "of tensors."
    )
