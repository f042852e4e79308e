"""A model's forward output read as class scores and labels: the one forward of the margin pass and of the data
probe (`forward_batch`), the default ``forward_fn`` (`default_forward`: ``(pl_module(x), y)``, reading a ``logits``
key or attribute), a binary model's one logit as two class scores, whole-number float labels as class indices, and
the checks that name the fix when the output is something else."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..distributions import MisconfigurationError

__all__ = [
    "ForwardFn",
    "as_class_labels",
    "as_class_scores",
    "check_forward_output",
    "class_scores",
    "default_forward",
    "forward_batch",
    "unpack_forward_output",
]

ForwardFn = Callable[[torch.nn.Module, Any], tuple[Tensor, Tensor]]
"""``forward_fn(pl_module, batch) -> (logits [B, K], targets [B])``."""


def default_forward(pl_module: torch.nn.Module, batch: Any) -> tuple[Tensor, Tensor]:
    """``(class scores of pl_module(x), y)`` for an ``(x, y)`` batch: the model's output itself when it is a
    tensor, else its ``logits`` key or attribute (the Hugging Face convention, `class_scores`)."""
    if not isinstance(batch, Sequence) or isinstance(batch, str) or len(batch) != 2:
        raise MisconfigurationError(
            f"StabilityMonitor's default forward expects `(x, y)` batches, got {type(batch).__name__}"
            f"{' of length ' + str(len(batch)) if isinstance(batch, Sequence) else ''}. Pass "
            "`forward_fn=lambda module, batch: (logits, targets)` to the StabilityMonitor, e.g. for dict batches "
            '`forward_fn=lambda module, batch: (module(batch["input"]), batch["label"])`.'
        )
    inputs, targets = batch
    return class_scores(pl_module(inputs)), targets


def class_scores(output: Any) -> Tensor:
    """The class scores in a model's output: the output itself if it is a tensor, else its ``"logits"`` entry (a
    dict) or ``.logits`` attribute (Hugging Face's ``ModelOutput`` has both).

    Raises:
        MisconfigurationError: naming what the model returned and a `forward_fn` that picks the scores.
    """
    if isinstance(output, Tensor):
        return output
    found = output.get("logits") if isinstance(output, Mapping) else getattr(output, "logits", None)
    if isinstance(found, Tensor):
        return found
    if isinstance(output, Mapping):
        got, pick = f"a {type(output).__name__} with keys {list(output)[:8]}", '["scores"]'
    elif isinstance(output, tuple | list):
        got, pick = f"a {type(output).__name__} of {len(output)} items", "[0]"
    else:
        got, pick = f"a {type(output).__name__}", ".scores"
    raise MisconfigurationError(
        f"StabilityMonitor's default forward calls `pl_module(x)` on an `(x, y)` batch and got {got}, with no "
        "`logits` key or attribute holding the class scores. Pass `forward_fn=` returning `(class scores [B, K], "
        f"labels [B])`, e.g. `forward_fn=lambda module, batch: (module(batch[0]){pick}, batch[1])`."
    )


def forward_batch(
    module: torch.nn.Module,
    forward_fn: ForwardFn,
    batch: Any,
    move_to_device: Callable[[Any], Any] = lambda batch: batch,
    forward_context: Callable[[], Any] | None = None,
) -> tuple[Any, Any]:
    """``(class scores, targets)`` of one batch: moved to the device, ``forward_fn`` under the precision context,
    its output unpacked (a binary logit becomes two class scores). The one forward of the margin pass and of the
    data probe; the caller holds eval mode and ``inference_mode``."""
    batch = move_to_device(batch)
    if forward_context is None:
        return unpack_forward_output(forward_fn(module, batch))
    with forward_context():
        return unpack_forward_output(forward_fn(module, batch))


def as_class_scores(logits: Any) -> Any:
    """A binary model's single logit ``z`` (shape ``[B]`` or ``[B, 1]``: the log-odds of class 1) as the class
    scores ``[0, z]``: their softmax is ``(1 − σ(z), σ(z))``, so the margin of a class-1 sample is ``z``, of a
    class-0 sample ``−z``, and the cross entropy is ``binary_cross_entropy_with_logits``. Anything else is
    returned unchanged."""
    if isinstance(logits, Tensor) and (logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1)):
        column = logits.reshape(-1, 1)
        return torch.cat([torch.zeros_like(column), column], dim=1)
    return logits


def unpack_forward_output(output: Any) -> tuple[Any, Any]:
    # unpacking a bare logits tensor would split it along the batch dimension (or fail with "too many values")
    if not isinstance(output, tuple | list) or len(output) != 2:
        got = f"a tensor of shape {tuple(output.shape)}" if isinstance(output, Tensor) else type(output).__name__
        if isinstance(output, tuple | list):
            got += f" of length {len(output)}"
        raise MisconfigurationError(
            f"StabilityMonitor: `forward_fn` must return `(logits, targets)` (logits [B, K], targets [B]), got {got}. "
            "Return the class scores and the labels of the batch, e.g. "
            "`forward_fn=lambda module, batch: (module(batch[0]), batch[1])`."
        )
    return as_class_scores(output[0]), as_class_labels(output[1])


def as_class_labels(targets: Any) -> Any:
    """Labels as class indices: a float or bool tensor whose values are all whole numbers (the 0/1 labels that
    ``BCEWithLogitsLoss`` needs, ``-100`` included) becomes ``long``; anything else is returned unchanged.

    Raises:
        MisconfigurationError: for soft labels (floats that are not whole numbers, or a ``[B, K]`` float tensor of
            class probabilities): a certificate is about hard labels; the message shows a `forward_fn` returning them.
    """
    if not isinstance(targets, Tensor):
        return targets
    if targets.dim() == 2 and targets.shape[1] == 1:  # [B, 1] labels, as BCEWithLogitsLoss takes them
        targets = targets.reshape(-1)
    if not (targets.is_floating_point() or targets.dtype == torch.bool):
        return targets
    whole = targets.dim() == 1 and bool((torch.isfinite(targets) & (targets == torch.round(targets))).all())
    if whole or targets.dtype == torch.bool:
        return targets.long()
    soft = targets[torch.isfinite(targets) & (targets != torch.round(targets))]
    example = f" such as {float(soft[0]):g}" if soft.numel() else ""
    raise MisconfigurationError(
        f"StabilityMonitor: the labels are soft (a {targets.dtype} tensor of shape {tuple(targets.shape)} with "
        f"values{example} that are not class indices: probabilities, label smoothing or mixup targets). The "
        "certificate is about hard labels: return them from `forward_fn`, e.g. "
        "`forward_fn=lambda module, batch: (module(batch[0]), (batch[1] > 0.5).long())` for a one-logit binary "
        "model, or `(module(batch[0]), batch[1].argmax(dim=1))` for [B, K] class probabilities."
    )


def check_forward_output(logits: Any, targets: Any, indices: Tensor, num_classes: int) -> int:
    if not isinstance(logits, Tensor) or not isinstance(targets, Tensor):
        raise MisconfigurationError(
            "StabilityMonitor: `forward_fn` must return `(logits, targets)` tensors, got "
            f"({type(logits).__name__}, {type(targets).__name__})."
        )
    batch_size = indices.shape[0]
    if logits.dim() != 2 or logits.shape[0] != batch_size or targets.shape != (batch_size,):
        raise MisconfigurationError(
            f"StabilityMonitor: `forward_fn` must return logits of shape [B, K] and targets of shape [B] for a "
            f"batch of B={batch_size} samples, got logits {tuple(logits.shape)} and targets {tuple(targets.shape)}. "
            "For models that return something else (a dict, log-probabilities of a sequence, ...) pass a "
            "`forward_fn` that returns class scores and labels per sample."
        )
    if num_classes and logits.shape[1] != num_classes:
        raise MisconfigurationError(
            f"StabilityMonitor: `forward_fn` returned K={logits.shape[1]} classes after K={num_classes} in an "
            "earlier batch; every batch must score the same classes."
        )
    return logits.shape[1]
