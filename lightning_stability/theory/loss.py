"""The loss sandwich (docs/theory.md §2) and the Theorem 0 loss certificate (docs/theory.md §3)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .validation import check_finite_number, check_num_classes, check_values, normalised_weights

__all__ = [
    "binary_margin_loss",
    "loss_bounds",
    "loss_floor",
    "multiclass_margin_loss",
]


def binary_margin_loss(margin: Tensor) -> Tensor:
    r"""``g(d) = log(1 + e^{−d})``, the lower loss of a sample with margin ``d``, as ``logaddexp(0, −d)``.

    (``torch.nn.functional.softplus`` would return ``−d`` for ``−d > 20``, off by up to ``2e-9``.)
    """
    margin = margin.to(torch.float64)
    return torch.logaddexp(torch.zeros_like(margin), -margin)


def multiclass_margin_loss(margin: Tensor, num_classes: int) -> Tensor:
    r"""``f_K(d) = log(1 + (K−1) e^{−d})``, the upper loss of a sample, computed as ``logaddexp(0, log(K−1) − d)``."""
    margin = margin.to(torch.float64)
    return torch.logaddexp(torch.zeros_like(margin), math.log(num_classes - 1) - margin)


def loss_bounds(margins: Tensor, num_classes: int, weights: Tensor | None = None) -> tuple[float, float]:
    r"""Bounds of the cross-entropy loss from the margins alone (docs/theory.md §2).

    ``Σ_k μ_k g(δ_k) ≤ L ≤ Σ_k μ_k f_K(δ_k)`` with ``g(d) = log(1 + e^{−d})`` and
    ``f_K(d) = log(1 + (K−1) e^{−d})``; both are equalities when ``K = 2``.

    Args:
        margins: ``[N]`` margins ``δ``.
        num_classes: ``K >= 2``.
        weights: optional ``[N]`` non-negative sample weights (normalised here); ``None`` is uniform.

    Returns:
        ``(lower, upper)`` as floats.
    """
    values = check_values(margins)
    num_classes = check_num_classes(num_classes)
    mu = normalised_weights(weights, values.shape[0], values.device)
    lower = float((mu * binary_margin_loss(values)).sum())
    if num_classes == 2:  # f_2 = g: the sandwich closes
        return lower, lower
    upper = float((mu * multiclass_margin_loss(values, num_classes)).sum())
    return lower, upper


def loss_floor(loss: float, eta: float = 0.0) -> float:
    r"""Theorem 0: the floor ``1 − L / g(η)`` on ``μ(G'_η)`` at any later parameters with loss ``L' ≤ L``.

    With ``η = 0`` this is the accuracy floor ``1 − L / log 2``. The result is clipped to ``[0, 1]``.

    Args:
        loss: the (weighted) cross-entropy loss ``L >= 0`` now, or an upper bound of it.
        eta: margin threshold ``η`` of the good set ``G'_η = {δ' > η}``.
    """
    loss = check_finite_number(loss, "loss")
    if loss < 0:
        raise ValueError(f"`loss` must be >= 0 (a cross entropy), got {loss}.")
    eta = check_finite_number(eta, "eta")
    threshold_loss = float(binary_margin_loss(torch.tensor(eta, dtype=torch.float64)))
    if threshold_loss == 0.0:  # g(η) underflows for η ≳ 745: no sample can be certified that far out
        return 0.0 if loss > 0 else 1.0
    return min(1.0, max(0.0, 1.0 - loss / threshold_loss))
