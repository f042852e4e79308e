"""The example: an MNIST MLP with absolute-value activations, its data, and the instability demo."""

from .data import MNISTDataModule, OutlierDataModule, outlier_dataset, read_idx, write_idx
from .model import AbsMLP, AbsoluteValue, LinearClassifier

__all__ = [
    "AbsMLP",
    "AbsoluteValue",
    "LinearClassifier",
    "MNISTDataModule",
    "OutlierDataModule",
    "outlier_dataset",
    "read_idx",
    "write_idx",
]
