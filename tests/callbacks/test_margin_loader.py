"""The margin pass's loader (callbacks/margin_loader.py): a batch fetched in one call where the dataset allows it —
the rows of a ``TensorDataset`` behind any ``Subset``s, or the dataset's own ``__getitems__`` — equals the batch
collated item by item, with every sample's index."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset, TensorDataset, default_collate

from lightning_stability.callbacks.margin_loader import GatheredRows, IndexedDataset, gather_rows, margin_dataloader

INPUTS = torch.arange(60, dtype=torch.float32).reshape(20, 3)
LABELS = torch.arange(20) % 4
DATA = TensorDataset(INPUTS, LABELS)


def item_by_item(dataset: Dataset, batch_size: int, indices: torch.Tensor | None = None) -> list:
    loader = margin_dataloader(dataset, batch_size, indices=indices, collate_fn=lambda items: default_collate(items))
    return list(loader)


def test_gathered_rows_are_what_default_collate_makes_of_the_items() -> None:
    nested = Subset(Subset(DATA, [19, 3, 7, 11, 0]), [4, 1, 2])  # samples 0, 3, 7 of DATA
    for dataset, picked in ((DATA, [5, 2, 9]), (nested, [0, 2, 1])):
        fields = gather_rows(dataset, picked)
        expected = default_collate([dataset[index] for index in picked])
        assert isinstance(expected, list) and len(fields) == len(expected) == 2
        for field, collated in zip(fields, expected, strict=True):
            assert field.dtype == collated.dtype and torch.equal(field, collated)


def test_only_tensor_datasets_themselves_are_gathered() -> None:
    class Doubled(TensorDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return 2 * x, y

    assert gather_rows(Doubled(INPUTS, LABELS), [0, 1]) is None
    assert gather_rows([(INPUTS[0], LABELS[0])], [0]) is None


def test_the_pass_loader_gathers_and_gives_the_same_batches() -> None:
    for indices in (None, torch.tensor([1, 4, 5, 9, 12, 17, 18])):
        fast = list(margin_dataloader(DATA, 4, indices=indices))
        slow = item_by_item(DATA, 4, indices)
        assert len(fast) == len(slow) > 1
        for (fast_indices, fast_batch), (slow_indices, slow_batch) in zip(fast, slow, strict=True):
            assert torch.equal(fast_indices, slow_indices)
            assert all(torch.equal(a, b) for a, b in zip(fast_batch, slow_batch, strict=True))
    assert isinstance(IndexedDataset(DATA, gather=True).__getitems__([0, 1]), GatheredRows)
    assert IndexedDataset(DATA, gather=False).__getitems__([0, 1])[1][0] == 1  # a custom collate: item by item


def test_a_datasets_own_getitems_is_used() -> None:
    class Batched(Dataset):
        def __init__(self) -> None:
            self.calls: list[list[int]] = []

        def __len__(self) -> int:
            return 20

        def __getitem__(self, index: int):
            raise AssertionError("fetched one by one")

        def __getitems__(self, indices: list[int]):
            self.calls.append(list(indices))
            return [(INPUTS[index], LABELS[index]) for index in indices]

    dataset = Batched()
    batches = list(margin_dataloader(dataset, 8))
    assert dataset.calls == [list(range(0, 8)), list(range(8, 16)), list(range(16, 20))]
    assert torch.equal(batches[2][0], torch.arange(16, 20)) and torch.equal(batches[2][1][0], INPUTS[16:])
