"""The SharpnessMonitor's default loss (`cross_entropy_loss`): cross entropy of ``(x, y)`` batches, binary cross
entropy with labels 0 or 1 for a model of one logit; and the ``loss_fn=`` examples its errors suggest."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..distributions import MisconfigurationError

__all__ = ["BINARY_LOSS_EXAMPLE", "MULTICLASS_LOSS_EXAMPLE", "cross_entropy_loss"]


BINARY_LOSS_EXAMPLE = (
    "loss_fn=lambda module, batch: torch.nn.functional.binary_cross_entropy_with_logits("
    "module(batch[0]).reshape(-1), batch[1].reshape(-1).float())"
)
"""A ``loss_fn=`` for a one-logit model with labels of any value in ``[0, 1]`` (soft labels included)."""

MULTICLASS_LOSS_EXAMPLE = "loss_fn=lambda module, batch: torch.nn.functional.cross_entropy(module(batch[0]), batch[1])"
"""A ``loss_fn=`` for a model of ``C`` class scores and integer class labels, spelled out."""


def cross_entropy_loss(pl_module: nn.Module, batch: Any) -> Tensor:
    """The default loss of an ``(x, y)`` batch, the mean over its ``B`` samples of the cross entropy of the logits
    ``z = pl_module(x)``:

    * one logit per sample (``z`` of shape ``[B]`` or ``[B, 1]``, as for ``BCEWithLogitsLoss``; ``[]`` for one
      sample whose ``[1]`` a model squeezed): the binary cross entropy ``(1/B) Σ_k [softplus(z_k) − y_k z_k]``
      (`torch.nn.functional.binary_cross_entropy_with_logits`), the labels ``y`` — ``B`` of them, each 0 or 1, of
      any dtype (bool, integer, or integer-valued float) — cast to the logits' dtype;
    * else ``cross_entropy(z, y)`` (``z`` of shape ``[B, C]``, ``y`` the class indices or probabilities).

    Raises:
        MisconfigurationError: if the batch is no ``(x, y)`` pair, or a one-logit batch's labels are not ``B``
            values in ``{0, 1}`` (soft labels need a ``loss_fn=``; the message gives one).
    """
    if not isinstance(batch, list | tuple) or len(batch) != 2:
        raise MisconfigurationError(
            "SharpnessMonitor's default loss expects `(x, y)` batches, got "
            f"{type(batch).__name__}. Pass `loss_fn=lambda module, batch: <mean training loss of the batch>`."
        )
    inputs, targets = batch
    logits = pl_module(inputs)
    if isinstance(logits, Tensor) and (logits.dim() <= 1 or (logits.dim() == 2 and logits.shape[1] == 1)):
        return _binary_cross_entropy(logits, targets)
    return nn.functional.cross_entropy(logits, targets)


def _binary_cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """`binary_cross_entropy_with_logits` of one logit per sample against labels 0/1 (checked, then cast)."""
    labels = torch.as_tensor(targets, device=logits.device).reshape(-1)
    if labels.numel() != logits.numel():
        raise MisconfigurationError(
            f"SharpnessMonitor's default loss: the model's output of shape {tuple(logits.shape)} reads as one logit "
            f"per sample, {logits.numel()} of them, but the batch has {labels.numel()} labels (a model of class "
            "scores must keep the batch dimension, [B, C]; a one-logit model needs one label 0 or 1 per sample). "
            f"Pass the loss you train with, e.g. `{BINARY_LOSS_EXAMPLE}`."
        )
    if not bool(((labels == 0) | (labels == 1)).all()):
        found = ", ".join(f"{value:g}" for value in labels[(labels != 0) & (labels != 1)][:3].tolist())
        raise MisconfigurationError(
            "SharpnessMonitor's default loss: the model gives one logit per sample, so it computes binary cross "
            f"entropy with labels 0 or 1, but the batch has labels such as {found}. Pass the loss you train with, "
            f"e.g. for labels in [0, 1] `{BINARY_LOSS_EXAMPLE}`."
        )
    return nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), labels.to(logits.dtype))
