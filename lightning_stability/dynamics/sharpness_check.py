r"""The eigen-solves of one sharpness check: the top eigenvalues of ``H`` and the edge ratio ``r`` (D1).

* ``λ_1 ≥ … ≥ λ_k`` of ``H`` by Lanczos with the residual stopping rule (`lanczos_top_eigenvalues`), started from
  the previous check's top Ritz vector (`warm_start`), or ``λ_max`` alone by power iteration
  (`top_hessian_eigenvalue`, ``method="power"``);
* the gap ``λ_2 / λ_1`` (Lanczos, ``k ≥ 2``): near 1, the top eigenvalues cluster and power iteration is slow;
* ``r = λ_max(D^{1/2}(H + W)D^{1/2})`` from the optimizer's `OptimizerPreconditioner`: ``d (λ_1 + w)`` without
  products when ``D = d I`` and ``W = w I``, else a Lanczos run of its own on `edge_operator`;
* on request, ``tr(H)`` with its standard error (`sharpness_trace`) and ``λ_max(H_gg)`` of each optimizer parameter
  group (`sharpness_groups`).

No Lightning here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .optimizer_preconditioner import OptimizerPreconditioner
from .results import EigenEstimate
from .sharpness import lanczos_top_eigenvalues, top_hessian_eigenvalue
from .sharpness_edge import edge_operator, warm_start
from .sharpness_groups import group_top_eigenvalues
from .sharpness_trace import TraceEstimate, trace_estimate

__all__ = ["SharpnessEstimates", "estimate_sharpness"]


@dataclass(frozen=True)
class SharpnessEstimates:
    """The result of `estimate_sharpness`.

    ``top``: estimates of ``λ_1 ≥ λ_2 ≥ …`` of ``H`` (one with power iteration); ``edge``: the Lanczos estimate of
    ``r`` when it needed its own run (else ``None``); ``edge_ratio``: ``r`` (``None`` without a preconditioner);
    ``products``: Hessian-vector products of the whole check; ``trace``: the estimate of ``tr(H)`` (``None`` when not
    requested); ``groups``: ``λ_max(H_gg)`` of each parameter group (``None`` for a group without trainable
    parameters; empty when not requested).
    """

    top: list[EigenEstimate]
    edge: EigenEstimate | None
    edge_ratio: float | None
    products: int
    trace: TraceEstimate | None = None
    groups: tuple[EigenEstimate | None, ...] = ()

    @property
    def converged(self) -> bool:
        blocks = all(e.converged for e in self.groups if e is not None)
        return all(e.converged for e in self.top) and (self.edge is None or self.edge.converged) and blocks

    @property
    def gap(self) -> float | None:
        r"""``λ_2 / λ_1`` when both were estimated, else ``None``."""
        return self.top[1].value / self.top[0].value if len(self.top) > 1 and self.top[0].value != 0 else None


def estimate_sharpness(
    matvec: Callable[[Tensor], Tensor],
    dim: int,
    *,
    method: Literal["power", "lanczos"],
    k: int,
    tol: float,
    max_iter: int,
    seed: int,
    device: torch.device | str,
    preconditioner: OptimizerPreconditioner | None,
    previous: Tensor | None = None,
    previous_edge: Tensor | None = None,
    trace_products: int = 0,
    trace_method: str = "hutchinson",
    groups: Sequence[Tensor | None] = (),
) -> SharpnessEstimates:
    r"""The top ``k`` eigenvalues of ``matvec`` (``H``) and the edge ratio ``r`` (module docstring).

    ``previous`` / ``previous_edge``: the previous check's Ritz vectors of ``H`` and of the edge operator
    (warm starts, Lanczos only); ``None`` starts from the seeded Gaussian vector. ``trace_products > 0``: also
    ``tr(H)`` by `trace_estimate` (``trace_method``, probes seeded with ``seed + 2``); ``groups``: the flat
    positions of each parameter group (`group_positions`), whose blocks' ``λ_max`` `group_top_eigenvalues` computes
    (start vectors seeded with ``seed + 3 + g``).
    """
    main = _main_estimates(matvec, dim, method, k, tol, max_iter, seed, device, preconditioner, previous, previous_edge)
    trace = None
    if trace_products > 0:
        trace = trace_estimate(matvec, dim, trace_products, method=trace_method, seed=seed + 2, device=device)
    blocks = tuple(group_top_eigenvalues(matvec, dim, groups, tol=tol, max_iter=max_iter, seed=seed + 3, device=device))
    extra = (0 if trace is None else trace.products) + sum(e.products for e in blocks if e is not None)
    return SharpnessEstimates(main.top, main.edge, main.edge_ratio, main.products + extra, trace, blocks)


def _main_estimates(
    matvec: Callable[[Tensor], Tensor],
    dim: int,
    method: Literal["power", "lanczos"],
    k: int,
    tol: float,
    max_iter: int,
    seed: int,
    device: torch.device | str,
    preconditioner: OptimizerPreconditioner | None,
    previous: Tensor | None,
    previous_edge: Tensor | None,
) -> SharpnessEstimates:
    """The top eigenvalues of ``H`` and the edge ratio (`estimate_sharpness` without trace and groups)."""
    if method == "lanczos":
        top = lanczos_top_eigenvalues(matvec, warm_start(previous, dim, seed, device), k=k, tol=tol, max_iter=max_iter)
    else:
        top = [
            top_hessian_eigenvalue(matvec, dim, method="power", tol=tol, max_iter=max_iter, seed=seed, device=device)
        ]
    products = top[0].products
    if preconditioner is None:
        return SharpnessEstimates(top, None, None, products)
    uniform = preconditioner.uniform()
    if uniform is not None:
        scale, decay = uniform
        return SharpnessEstimates(top, None, scale * (top[0].value + decay), products)
    operator = edge_operator(matvec, preconditioner.scale().to(device), preconditioner.flat_decay().to(device))
    edge = lanczos_top_eigenvalues(
        operator, warm_start(previous_edge, dim, seed + 1, device), k=1, tol=tol, max_iter=max_iter
    )[0]
    return SharpnessEstimates(top, edge, edge.value, products + edge.products)
