r"""The trace of the loss Hessian from Hessian-vector products (docs/dynamics.md D1, "Trace").

* `hutchinson_trace`: for a symmetric ``H`` and a Rademacher vector ``z`` (independent entries ±1, equally likely)
  ``E[zᵀ H z] = tr(H)`` and ``Var[zᵀ H z] = 2 Σ_{i≠j} H_ij²``, so ``m`` probes give
  ``t̂ = (1/m) Σ_j z_jᵀ H z_j`` with standard error ``s / √m`` (``s``: the sample standard deviation of the ``m``
  values). A diagonal ``H`` has no variance: every probe is ``tr(H)`` exactly.
* `hutch_plus_plus_trace` (Meyer, Musco, Musco & Woodruff 2021, *Hutch++: optimal stochastic trace estimation*):
  ``k`` products ``H S`` sketch the top subspace (``Q`` an orthonormal basis of ``H S``), ``k`` more give
  ``tr(Qᵀ H Q)`` exactly, and ``l`` Rademacher probes projected off ``Q``, ``g̃ = (I − QQᵀ) g``, estimate the rest:
  ``t̂ = tr(Qᵀ H Q) + (1/l) Σ_j g̃_jᵀ H g̃_j``. Given ``Q`` the first term is exact, so the standard error is that of
  the second, ``s / √l`` with ``s`` the sample standard deviation of its ``l`` values (conditional on the sketch).

No Lightning here; probes are drawn from a generator seeded with ``seed`` (the global RNG is not touched), in
float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["TraceEstimate", "hutch_plus_plus_trace", "hutchinson_trace", "trace_estimate"]

MatVec = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class TraceEstimate:
    """An estimate ``value`` of ``tr(H)`` with its standard error ``stderr`` (module docstring), the ``products``
    it used and the random ``samples`` ``zᵀ H z`` it averaged (Hutch++: those of the projected probes)."""

    value: float
    stderr: float
    products: int
    samples: tuple[float, ...]


def _rademacher(dim: int, count: int, generator: torch.Generator) -> Tensor:
    """``count`` columns of independent ±1 entries, shape ``[dim, count]`` (float64)."""
    return torch.randint(0, 2, (dim, count), generator=generator, dtype=torch.float64) * 2 - 1


def _mean_and_stderr(values: list[float]) -> tuple[float, float]:
    """``(mean, s / √m)`` with ``s`` the sample standard deviation (denominator ``m − 1``)."""
    m = len(values)
    mean = sum(values) / m
    variance = sum((value - mean) ** 2 for value in values) / (m - 1)
    return mean, math.sqrt(variance / m)


def _check(dim: int, count: int, least: int) -> None:
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"`dim` must be a positive integer, got {dim!r}.")
    if not isinstance(count, int) or isinstance(count, bool) or count < least:
        raise ValueError(f"the number of products must be an integer >= {least}, got {count!r}.")


def _finite(product: Tensor) -> Tensor:
    if not bool(torch.isfinite(product).all()):
        raise ValueError("a Hessian-vector product of the trace estimate is not finite (NaN or inf).")
    return product


def hutchinson_trace(
    matvec: MatVec, dim: int, samples: int, *, seed: int = 0, device: torch.device | str = "cpu"
) -> TraceEstimate:
    r"""Hutchinson's ``t̂ = (1/m) Σ_j z_jᵀ H z_j`` over ``m = samples ≥ 2`` Rademacher probes, standard error
    ``s / √m`` (module docstring; D1). ``m`` products."""
    _check(dim, samples, 2)
    probes = _rademacher(dim, samples, torch.Generator().manual_seed(seed)).to(device)
    values = [float(torch.dot(probes[:, j], _finite(matvec(probes[:, j])))) for j in range(samples)]
    value, stderr = _mean_and_stderr(values)
    return TraceEstimate(value, stderr, samples, tuple(values))


def hutch_plus_plus_trace(
    matvec: MatVec, dim: int, products: int, *, seed: int = 0, device: torch.device | str = "cpu"
) -> TraceEstimate:
    r"""Hutch++ with ``products ≥ 4`` products: a sketch of ``k = ⌊products/3⌋`` columns (``k`` products for
    ``H S``, ``k`` for ``H Q``) and ``l = products − 2k`` projected Rademacher probes,
    ``t̂ = tr(Qᵀ H Q) + (1/l) Σ_j g̃_jᵀ H g̃_j``, standard error ``s / √l`` given ``Q`` (module docstring; D1).
    Exact (standard error 0) when ``rank(H) ≤ k``."""
    _check(dim, products, 4)
    sketch_size = min(products // 3, dim)
    rest = products - 2 * sketch_size
    generator = torch.Generator().manual_seed(seed)
    sketch = _rademacher(dim, sketch_size, generator).to(device)
    image = torch.stack([_finite(matvec(sketch[:, j])) for j in range(sketch_size)], dim=1)
    basis, _ = torch.linalg.qr(image)
    exact = sum(float(torch.dot(basis[:, j], _finite(matvec(basis[:, j])))) for j in range(sketch_size))
    probes = _rademacher(dim, rest, generator).to(device)
    probes = probes - basis @ (basis.T @ probes)
    values = [float(torch.dot(probes[:, j], _finite(matvec(probes[:, j])))) for j in range(rest)]
    mean, stderr = _mean_and_stderr(values)
    return TraceEstimate(exact + mean, stderr, 2 * sketch_size + rest, tuple(values))


def trace_estimate(
    matvec: MatVec, dim: int, products: int, *, method: str, seed: int = 0, device: torch.device | str = "cpu"
) -> TraceEstimate:
    """`hutchinson_trace` (``method="hutchinson"``) or `hutch_plus_plus_trace` (``"hutch++"``) with ``products``
    products."""
    if method == "hutchinson":
        return hutchinson_trace(matvec, dim, products, seed=seed, device=device)
    if method == "hutch++":
        return hutch_plus_plus_trace(matvec, dim, products, seed=seed, device=device)
    raise ValueError(f"the trace method must be 'hutchinson' or 'hutch++', got {method!r}.")
