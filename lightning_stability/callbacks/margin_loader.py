"""The margin pass's loaders: every sample keeps its dataset index through a sequential (DDP-sharded) loader, or
its position in a loader of the user's. A batch is fetched in one call where the dataset allows it: its own
``__getitems__`` (the fast path of torch's DataLoader), or one indexing of the tensors of a ``TensorDataset``, also
behind ``Subset``s, instead of one ``__getitem__`` per sample."""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    SequentialSampler,
    Subset,
    TensorDataset,
)

from ..distributions import MisconfigurationError

__all__ = ["GatheredRows", "IndexedCollate", "IndexedDataset", "gather_rows", "margin_dataloader", "positioned_loader"]


def gather_rows(dataset: Dataset, indices: list[int]) -> list[Tensor] | None:
    """The items ``indices`` of a ``TensorDataset`` (also behind ``Subset``s) as one tensor per field, each the rows
    ``tensor[indices]`` — what ``default_collate`` makes of those items (a list for tuple items) — or ``None`` for
    any other dataset (a subclass may override ``__getitem__``, so only these exact classes)."""
    while type(dataset) is Subset:
        indices = [int(dataset.indices[index]) for index in indices]
        dataset = dataset.dataset
    if type(dataset) is not TensorDataset:
        return None
    rows = torch.as_tensor(indices, dtype=torch.long)
    return [tensor[rows] for tensor in dataset.tensors]


class GatheredRows:
    """A batch fetched in one call (`IndexedDataset.__getitems__`): its indices and its collated fields."""

    def __init__(self, indices: list[int], fields: list[Tensor]) -> None:
        self.indices, self.fields = indices, fields


class IndexedDataset(Dataset):
    """Map-style view of a dataset that yields ``(index, item)`` so every sample keeps its identity.

    Args:
        dataset: the samples.
        gather: the loader collates with ``default_collate``, so a ``TensorDataset``'s batch may be gathered as
            rows in one call (`gather_rows`) instead of collated item by item.
    """

    def __init__(self, dataset: Dataset, gather: bool = False) -> None:
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
        self.dataset, self.gather = dataset, gather

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[int, Any]] | GatheredRows:
        """A batch in one call: the dataset's own ``__getitems__``, the rows of a ``TensorDataset`` (with
        ``gather``), else item by item."""
        fields = gather_rows(self.dataset, indices) if self.gather else None
        if fields is not None:
            return GatheredRows(indices, fields)
        batched = getattr(self.dataset, "__getitems__", None)
        items = batched(indices) if callable(batched) else [self.dataset[index] for index in indices]
        return list(zip(indices, items, strict=True))


class IndexedCollate:
    """Collate ``(index, item)`` pairs into ``(LongTensor of indices, collate_fn(items))`` (picklable)."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any] | None) -> None:
        self.collate_fn = collate_fn or torch.utils.data.default_collate

    def __call__(self, pairs: list[tuple[int, Any]] | GatheredRows) -> tuple[Tensor, Any]:
        if isinstance(pairs, GatheredRows):  # already collated, by default_collate's rule
            return torch.tensor(pairs.indices, dtype=torch.long), pairs.fields
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
    default = collate_fn is None or collate_fn is torch.utils.data.default_collate
    indexed = IndexedDataset(dataset, gather=default)
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
