"""The SharpnessMonitor's ``mode="train"`` (docs/dynamics.md D1, "Batch norm"): batch-norm layers normalise with the
statistics of the batch, as in the training step, and the check leaves every buffer as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["BATCH_NORMS", "batch_statistics"]

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
"""The layers that ``mode="train"`` switches to batch statistics (the lazy variants become these when first run)."""


@contextmanager
def batch_statistics(module: nn.Module) -> Iterator[int]:
    """Inside, every batch-norm layer of ``module`` (`BATCH_NORMS`) is in train mode — it normalises with the mean
    and variance of the batch it sees, and its loss is that of the training step — while every other submodule keeps
    its mode (the monitor puts them in eval mode: dropout off). Yields the number of such layers. On exit every
    buffer of ``module`` (running means and variances, ``num_batches_tracked``, any other) is copied back to its
    value on entry and each layer's mode restored, so the check changes no state of the model."""
    layers = [layer for layer in module.modules() if isinstance(layer, BATCH_NORMS)]
    modes = [layer.training for layer in layers]
    saved = [(buffer, buffer.detach().clone()) for buffer in module.buffers()]
    try:
        for layer in layers:
            layer.train(True)
        yield len(layers)
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
        for layer, mode in zip(layers, modes, strict=True):
            layer.train(mode)
