r"""``λ_max`` of the Hessian block of each optimizer parameter group (docs/dynamics.md D1, "Per parameter group").

With ``θ = (θ_1, …, θ_G)`` split by the optimizers' parameter groups and ``E_g`` the embedding of group ``g``'s
coordinates into the flat parameter vector (zero elsewhere), the diagonal block is ``H_gg = E_gᵀ H E_g``; a product
``H_gg u = (H E_g u)_g`` is one Hessian-vector product with a vector zero outside the group, read back on the group.
``λ_max(H_gg)`` is the curvature the group alone would see if every other group were frozen (by Cauchy interlacing
``λ_min(H) ≤ λ_max(H_gg) ≤ λ_max(H)``).

No Lightning here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .results import EigenEstimate
from .sharpness import lanczos_top_eigenvalue

__all__ = ["block_operator", "group_positions", "group_top_eigenvalues"]

MatVec = Callable[[Tensor], Tensor]


def group_positions(optimizers: Sequence[Any], params: Sequence[Tensor]) -> list[Tensor | None]:
    """For each parameter group — the optimizers in order, each one's ``param_groups`` in order — the positions of
    its parameters in the flat vector of ``params`` (the order of `HessianVectorProduct`), or ``None`` when none of
    its parameters is in ``params`` (all frozen). A wrapper with a public ``optimizer`` attribute (Lightning's
    ``LightningOptimizer``) is unwrapped once.

    Raises:
        ValueError: an optimizer without a ``param_groups`` list.
    """
    offsets: dict[int, tuple[int, int]] = {}
    start = 0
    for param in params:
        offsets[id(param)] = (start, param.numel())
        start += param.numel()
    positions: list[Tensor | None] = []
    for optimizer in optimizers:
        inner = getattr(optimizer, "optimizer", None)
        optimizer = inner if isinstance(inner, torch.optim.Optimizer) else optimizer
        if not isinstance(getattr(optimizer, "param_groups", None), list):
            raise ValueError(f"{type(optimizer).__name__} has no `param_groups` list: its groups cannot be read.")
        for group in optimizer.param_groups:
            ranges = [offsets[id(p)] for p in group["params"] if id(p) in offsets]
            if not ranges:
                positions.append(None)
                continue
            positions.append(torch.cat([torch.arange(first, first + size) for first, size in ranges]))
    return positions


def block_operator(matvec: MatVec, positions: Tensor, dim: int) -> MatVec:
    r"""``u ↦ H_gg u = (H E_g u)_g`` on vectors of length ``len(positions)``, ``E_g u`` the flat vector of length
    ``dim`` that is ``u`` at ``positions`` and 0 elsewhere (module docstring)."""

    def apply(vector: Tensor) -> Tensor:
        full = torch.zeros(dim, dtype=vector.dtype, device=vector.device)
        full[positions.to(vector.device)] = vector
        return matvec(full)[positions.to(vector.device)]

    return apply


def group_top_eigenvalues(
    matvec: MatVec,
    dim: int,
    groups: Sequence[Tensor | None],
    *,
    tol: float,
    max_iter: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> list[EigenEstimate | None]:
    r"""``λ_max(H_gg)`` of each group by `lanczos_top_eigenvalue` on `block_operator` (residual rule
    ``‖H_gg y − θ y‖ ≤ tol·|θ|``), started from a Gaussian vector seeded with ``seed + g``; ``None`` for a group
    without positions."""
    estimates: list[EigenEstimate | None] = []
    for index, positions in enumerate(groups):
        if positions is None:
            estimates.append(None)
            continue
        generator = torch.Generator().manual_seed(seed + index)
        start = torch.randn(positions.numel(), generator=generator, dtype=torch.float64).to(device)
        operator = block_operator(matvec, positions, dim)
        estimates.append(lanczos_top_eigenvalue(operator, start, tol=tol, max_iter=max_iter))
    return estimates
