r"""The edge of stability for any optimizer: the ratio ``r = λ_max(P^{-1/2}(H + W)P^{-1/2}) / T`` and its verdict (D1).

``P⁻¹``, ``T`` and the coupled weight decay ``W`` come from `optimizer_preconditioner.read_preconditioner`. With
``D = P⁻¹ / T`` (diagonal), ``P^{-1/2}(H + W)P^{-1/2} / T`` and ``D^{1/2}(H + W)D^{1/2}`` have the same
eigenvalues, so

    r = λ_max(D^{1/2} (H + W) D^{1/2}),

and ``r = 1`` is the edge of stability of every optimizer (docs/dynamics.md D1). When ``D = d I`` and ``W = w I``
(plain SGD with one learning rate) ``r = d (λ_max(H) + w)`` needs no products of its own.

`edge_verdict` is the stop rule's event: the ratio clearly above the edge while the loss does not fall.
No Lightning here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["edge_operator", "edge_verdict", "warm_start"]


def edge_operator(matvec: Callable[[Tensor], Tensor], scale: Tensor, decay: Tensor) -> Callable[[Tensor], Tensor]:
    r"""``v ↦ D^{1/2} (H + W) D^{1/2} v`` for the flat diagonals ``D = scale`` and ``W = decay`` (float64).

    Symmetric when ``H`` is; its largest eigenvalue is the edge ratio ``r`` (module docstring).
    """
    root = scale.clamp_min(0).sqrt()

    def apply(vector: Tensor) -> Tensor:
        root_v = root.to(vector.device) * vector
        return root.to(vector.device) * (matvec(root_v) + decay.to(vector.device) * root_v)

    return apply


def warm_start(previous: Tensor | None, dim: int, seed: int, device: torch.device | str = "cpu") -> Tensor:
    r"""The start vector of a check: ``g / ‖g‖ + p / ‖p‖`` scaled so that ``g`` is one tenth of it, i.e.
    ``s = p/‖p‖ + 0.1 g/‖g‖`` with ``p`` the previous check's Ritz vector and ``g ~ N(0, I)`` seeded by ``seed``; ``g``
    alone without a previous vector (or one of another length).

    The random tenth keeps every eigendirection in the Krylov space, so a top direction that appeared since the
    previous check is still found; the previous vector makes the top one converge in a few products.
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(dim, generator=generator, dtype=torch.float64)
    noise = noise / torch.linalg.vector_norm(noise)
    if previous is None or previous.shape != (dim,) or not bool(torch.isfinite(previous).all()):
        return noise.to(device)
    norm = torch.linalg.vector_norm(previous)
    if norm == 0:
        return noise.to(device)
    return (previous.detach().to(device="cpu", dtype=torch.float64) / norm + 0.1 * noise).to(device)


def edge_verdict(ratio: float, loss: float, previous_loss: float | None, above: float) -> bool:
    r"""The sharpness event of a check: ``r > above`` and the training loss did not fall, ``L_k ≥ L_{k−1}``.

    ``r ≈ 1`` while the loss falls is the edge of stability (normal training, Cohen et al. 2021, 2022), never an
    event; an event needs the ratio clearly above the edge (``above`` > 1) *and* a loss that stopped falling. A
    first check (``previous_loss`` is None) is judged on the ratio alone. A non-finite ratio or loss is an event.
    """
    if not (math.isfinite(ratio) and math.isfinite(loss)):
        return True
    return ratio > above and (previous_loss is None or loss >= previous_loss)
