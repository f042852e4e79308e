"""Input checks shared by the functional core.

Every public function of `lightning_stability.theory` validates its tensors here and fails with a
`ValueError` that names the offending argument and says what to pass instead.
"""

from __future__ import annotations

import math
import operator

import torch
from torch import Tensor

__all__ = [
    "check_finite_number",
    "check_logits_and_targets",
    "check_num_classes",
    "check_positive",
    "check_values",
    "normalised_weights",
]


def check_logits_and_targets(logits: Tensor, targets: Tensor) -> None:
    """Check a ``[N, K]`` logit matrix and its ``[N]`` integer labels."""
    if not isinstance(logits, Tensor) or not isinstance(targets, Tensor):
        raise ValueError("`logits` and `targets` must be torch tensors (logits [N, K] float, targets [N] int).")
    if logits.dim() != 2:
        raise ValueError(
            f"`logits` must have shape [N, K] (one row of class scores per sample), got shape {tuple(logits.shape)}."
        )
    num_samples, num_classes = logits.shape
    if num_classes < 2:
        raise ValueError(f"`logits` has K={num_classes} column(s); a classifier needs K >= 2 classes.")
    if num_samples == 0:
        raise ValueError("`logits` is empty (N = 0); pass at least one sample.")
    if not logits.is_floating_point():
        raise ValueError(f"`logits` must be a floating point tensor, got dtype {logits.dtype}.")
    if targets.dim() != 1 or targets.shape[0] != num_samples:
        raise ValueError(
            f"`targets` must have shape [N] = [{num_samples}] to match `logits`, got shape {tuple(targets.shape)}."
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"`targets` must hold integer class indices, got dtype {targets.dtype}; use `.long()`.")
    # one host read for both checks (this runs once per batch in the margin pass)
    all_finite, low, high = torch.stack([torch.isfinite(logits).all().long(), *torch.aminmax(targets.long())]).tolist()
    if not all_finite:
        bad = ~torch.isfinite(logits).all(dim=1)
        first = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"`logits` contains NaN or inf in {int(bad.sum())} row(s) (first: row {first}); the margins of a "
            "diverged model are undefined. Check the learning rate / loss scaling, or drop those samples."
        )
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"`targets` must lie in [0, K) = [0, {num_classes}), got values in [{low}, {high}]; "
            "check the label encoding (e.g. 1-based labels) or the number of output units."
        )


def check_values(values: Tensor, name: str = "margins") -> Tensor:
    """Check a non-empty 1-D tensor of finite reals and return it as float64."""
    if not isinstance(values, Tensor):
        raise ValueError(f"`{name}` must be a 1-D torch tensor, got {type(values).__name__}.")
    if values.dim() != 1:
        raise ValueError(f"`{name}` must be 1-D (one value per sample), got shape {tuple(values.shape)}.")
    if values.numel() == 0:
        raise ValueError(f"`{name}` is empty; pass at least one sample.")
    if values.is_complex() or values.dtype == torch.bool:
        raise ValueError(f"`{name}` must be real numbers, got dtype {values.dtype}.")
    values = values.to(torch.float64)
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"`{name}` contains NaN or inf; compute it from finite logits.")
    return values


def check_num_classes(num_classes: int) -> int:
    """Check the number of classes ``K >= 2``."""
    try:
        if isinstance(num_classes, bool):
            raise TypeError
        num_classes = operator.index(num_classes)
    except TypeError:
        raise ValueError(f"`num_classes` must be an integer K >= 2, got {num_classes!r}.") from None
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be at least 2 (a classifier needs two classes), got {num_classes}.")
    return num_classes


def normalised_weights(weights: Tensor | None, num_samples: int, device: torch.device) -> Tensor:
    """Return the sample weights ``μ`` as float64 summing to one (uniform ``1/N`` for ``None``)."""
    if weights is None:
        return torch.full((num_samples,), 1.0 / num_samples, dtype=torch.float64, device=device)
    if not isinstance(weights, Tensor):
        raise ValueError(f"`weights` must be None or a 1-D torch tensor, got {type(weights).__name__}.")
    if weights.dim() != 1 or weights.shape[0] != num_samples:
        raise ValueError(
            f"`weights` must have shape [N] = [{num_samples}] (one weight per sample), got {tuple(weights.shape)}."
        )
    weights = weights.to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(weights).all()):
        raise ValueError("`weights` contains NaN or inf; pass finite non-negative weights.")
    if bool((weights < 0).any()):
        raise ValueError("`weights` contains negative entries; sample weights must be >= 0.")
    total = float(weights.sum())
    if not total > 0:
        raise ValueError("`weights` sum to zero; at least one sample needs a positive weight.")
    return weights / total


def float64(values: float | list[float]) -> Tensor:
    """A float64 tensor of the given number(s) (a 1-element tensor for a scalar); never float32 by default."""
    return torch.tensor(values if isinstance(values, list) else [values], dtype=torch.float64)


def check_positive(value: float, name: str, *, strict: bool = True) -> float:
    """Check a finite real number that is positive (or non-negative if ``strict=False``)."""
    value = check_finite_number(value, name)
    if value < 0 or (strict and value == 0):
        relation = "> 0" if strict else ">= 0"
        raise ValueError(f"`{name}` must be {relation}, got {value}.")
    return value


def check_finite_number(value: float, name: str) -> float:
    """Check that ``value`` is a finite real number and return it as ``float``."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a real number, got {value!r}.") from None
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}.")
    return value
