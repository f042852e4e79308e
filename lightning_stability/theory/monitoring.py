"""Comparing two checks: instability events, flip masses, loss rises (docs/theory.md §8)."""

from __future__ import annotations

from torch import Tensor

from .validation import check_finite_number, check_positive, check_values, normalised_weights

__all__ = ["flip_masses", "instability_event", "loss_rose"]


def flip_masses(previous_margins: Tensor, margins: Tensor, weights: Tensor | None = None) -> tuple[float, float]:
    r"""Mass that changed side between two checks ``t' < t`` of the same samples (docs/theory.md §8).

    Returns ``(forgotten, learned)`` with ``forgotten = μ{k : δ_k(t') > 0 ≥ δ_k(t)}`` and
    ``learned = μ{k : δ_k(t') ≤ 0 < δ_k(t)}``.
    """
    before = check_values(previous_margins, "previous_margins")
    after = check_values(margins, "margins")
    if before.shape != after.shape:
        raise ValueError(
            f"`previous_margins` {tuple(before.shape)} and `margins` {tuple(after.shape)} must describe the same "
            "samples in the same order."
        )
    mu = normalised_weights(weights, after.shape[0], after.device)
    before = before.to(after.device)
    forgotten = float((mu * ((before > 0) & (after <= 0))).sum())
    learned = float((mu * ((before <= 0) & (after > 0))).sum())
    return forgotten, learned


def instability_event(
    previous_loss: float, previous_accuracy: float, loss: float, accuracy: float, tol: float = 0.0
) -> bool:
    r"""Instability between two checks: ``L(t) < L(t')`` and ``A(t) < A(t') − tol`` (docs/theory.md §8)."""
    previous_loss = check_finite_number(previous_loss, "previous_loss")
    loss = check_finite_number(loss, "loss")
    previous_accuracy = check_finite_number(previous_accuracy, "previous_accuracy")
    accuracy = check_finite_number(accuracy, "accuracy")
    tol = check_positive(tol, "tol", strict=False)
    return loss < previous_loss and accuracy < previous_accuracy - tol


def loss_rose(previous_loss: float, loss: float) -> bool:
    r"""``L(t) > L(t')``: the standing hypothesis of every certificate failed for this step (docs/theory.md §8)."""
    return check_finite_number(loss, "loss") > check_finite_number(previous_loss, "previous_loss")
