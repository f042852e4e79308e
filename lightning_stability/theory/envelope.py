"""Lemma 2: the loss bound ``Φ(U)`` of a margin envelope, as a rigorous upper sum (docs/theory.md §4)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .loss import multiclass_margin_loss
from .validation import check_finite_number, check_num_classes, float64

__all__ = [
    "DEFAULT_PARTITION_SIZE",
    "Envelope",
    "envelope_loss_bound",
    "slope_integrals",
    "upper_sums",
    "upper_sums_from_slopes",
]

Envelope = Callable[[Tensor], Tensor]
"""A nondecreasing ``U : [0, D] → [0, ζ]`` evaluated elementwise on a float64 tensor of ``λ``."""

DEFAULT_PARTITION_SIZE = 4096
"""Pieces of the uniform partition of ``[0, D]``; the upper sum is then within ~1e-4 relative of ``Φ``."""


def upper_sums(envelope_right: Tensor, partition: Tensor, eta: Tensor, eta0: Tensor, num_classes: int) -> Tensor:
    r"""Batched ``f_K(η0) + Σ_i U(a_{i+1}) (f_K(a_i − η) − f_K(a_{i+1} − η))`` (docs/theory.md §4).

    On each piece ``U ≤ U(a_{i+1})`` (``U`` nondecreasing) and ``∫_{a_i}^{a_{i+1}} φ_K(λ − η) dλ =
    f_K(a_i − η) − f_K(a_{i+1} − η)`` exactly (``φ_K = −f_K'``), so every term bounds its piece of the integral
    from above. This is §4's upper sum with the factor ``φ_K(a_i − η)(a_{i+1} − a_i)`` replaced by the exact
    integral of ``φ_K`` over the piece, which is never larger: the same rigour, half the discretisation error
    or less (only ``U``'s variation inside a piece is overestimated).

    Args:
        envelope_right: ``[B, M]`` values ``U(a_{i+1})`` at the right end of every piece.
        partition: ``[B, M + 1]`` increasing points ``0 = a_0 < … < a_M = D``.
        eta, eta0: ``[B]`` thresholds.
        num_classes: ``K``.

    Returns:
        ``[B]`` upper bounds of ``Φ(U)``.
    """
    return upper_sums_from_slopes(envelope_right, slope_integrals(partition, eta, num_classes), eta0, num_classes)


def upper_sums_from_slopes(envelope_right: Tensor, slopes: Tensor, eta0: Tensor, num_classes: int) -> Tensor:
    r"""`upper_sums` with its ``[B, M]`` slope integrals given (`slope_integrals`, e.g. computed once for rows
    that share a window): ``f_K(η0) + Σ_i U(a_{i+1}) · slopes_i`` per row."""
    return multiclass_margin_loss(eta0, num_classes) + (envelope_right * slopes).sum(dim=1)


def slope_integrals(partition: Tensor, eta: Tensor, num_classes: int) -> Tensor:
    r"""``[B, M]`` weights ``f_K(a_i − η) − f_K(a_{i+1} − η) = ∫_{a_i}^{a_{i+1}} φ_K(λ − η) dλ ≥ 0`` of `upper_sums`.

    They depend on the partition and ``η`` only, not on the envelope: a search over envelopes that share a window
    computes them once (docs/theory.md §4).
    """
    upper_loss = multiclass_margin_loss(partition - eta.unsqueeze(1), num_classes)
    return (upper_loss[:, :-1] - upper_loss[:, 1:]).clamp_min(0.0)


def envelope_loss_bound(
    envelope: Envelope,
    eta: float,
    eta0: float,
    num_classes: int,
    *,
    partition_size: int = DEFAULT_PARTITION_SIZE,
    breakpoints: Tensor | None = None,
) -> float:
    r"""Lemma 2: ``L ≤ Φ(U) = f_K(η0) + ∫_0^D U(λ) φ_K(λ − η) dλ`` with ``D = η + η0`` (docs/theory.md §4).

    Valid for every nondecreasing envelope ``U : [0, D] → [0, ζ]`` with ``F(−η + λ) ≤ U(λ)``, when
    ``B_η = ∅`` and ``ζ = F(η0)``. The integral is computed as an upper sum on a uniform partition of
    ``partition_size`` pieces, refined by ``breakpoints`` (e.g. the jumps of a step envelope), so the result is
    never below ``Φ(U)`` and every floor built on it stays a true floor.

    Args:
        envelope: the envelope ``U``, evaluated on a float64 tensor of ``λ`` values.
        eta: bad threshold ``η`` (all margins ``>= −η``).
        eta0: good threshold ``η0`` with ``−η < η0``.
        num_classes: ``K >= 2``.
        partition_size: number of uniform pieces ``M``.
        breakpoints: optional extra partition points in ``(0, D)``.
    """
    num_classes = check_num_classes(num_classes)
    eta = check_finite_number(eta, "eta")
    eta0 = check_finite_number(eta0, "eta0")
    if not eta + eta0 > 0:
        raise ValueError(f"need −eta < eta0 (a positive window D = eta + eta0), got eta={eta}, eta0={eta0}.")
    if int(partition_size) < 1:
        raise ValueError(f"`partition_size` must be a positive integer, got {partition_size}.")
    span = eta + eta0
    partition = torch.linspace(0.0, span, int(partition_size) + 1, dtype=torch.float64)
    partition[-1] = span
    if breakpoints is not None:
        extra = breakpoints.to(torch.float64).reshape(-1)
        partition = torch.unique(torch.cat([partition, extra[(extra > 0) & (extra < span)]]))  # sorted
    values = envelope(partition[1:]).to(torch.float64)
    if values.shape != partition[1:].shape:
        raise ValueError("`envelope` must map a 1-D tensor of λ values to a tensor of the same shape.")
    bounds = upper_sums(values.unsqueeze(0), partition.unsqueeze(0), float64(eta), float64(eta0), num_classes)
    return float(bounds[0])
