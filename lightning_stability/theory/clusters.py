"""No small isolated data clusters: Condition B on projections of the inputs (docs/theory.md §9).

A slab ``P(u, c, r) = {x : |⟨u, x⟩ − c| ≤ r}`` (``‖u‖ = 1``) is an interval of the projections ``⟨u, x_k⟩``, so
for one direction the data condition *is* Condition B (no window) on those projections, and
`condition_b_constant` brackets it. The check over the whole sphere is
estimated by the minimum over a finite set of directions (random Gaussian ones, the top principal directions,
and any the caller adds, e.g. the rows of a model's first linear layer). More directions can only lower the
estimate: a constant ``≤ 1`` is a proven violation with a witness; a constant ``> 1`` is evidence, not proof.
"""

from __future__ import annotations

from collections.abc import Iterable, Sized
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .condition_b import condition_b_constant
from .distribution import SortedMargins
from .results import ConditionBResult, DataClusterReport
from .validation import check_finite_number, check_positive, normalised_weights

__all__ = ["MAX_PCA_DIMENSION", "data_clusters"]

MAX_PCA_DIMENSION = 4096
"""Largest input dimension for which principal directions are computed (from the exact ``d × d`` covariance)."""


def _batches(inputs: Any, batch_size: int) -> Iterable[Tensor]:
    """Flattened float64 input batches of a tensor, a map-style dataset or a finite DataLoader."""
    if isinstance(inputs, Tensor):
        if inputs.dim() < 2 or inputs.shape[0] == 0:
            raise ValueError(f"`inputs` must be a non-empty [N, ...] tensor, got shape {tuple(inputs.shape)}.")
        for start in range(0, inputs.shape[0], batch_size):
            yield inputs[start : start + batch_size].reshape(min(batch_size, inputs.shape[0] - start), -1)
        return
    if isinstance(inputs, Dataset) and not isinstance(inputs, IterableDataset):
        try:
            length = len(cast(Sized, inputs))
        except TypeError:
            raise ValueError("`inputs` is a dataset without `__len__`; pass a tensor or a finite DataLoader.") from None
        if length == 0:
            raise ValueError("`inputs` is an empty dataset.")
        inputs = DataLoader(inputs, batch_size=batch_size, shuffle=False)
    elif isinstance(inputs, IterableDataset):
        raise ValueError(
            "`inputs` is an IterableDataset; pass a tensor, a map-style dataset or a finite DataLoader whose order "
            "is fixed (the indices of the witness samples refer to that order)."
        )
    if not isinstance(inputs, DataLoader | list | tuple):
        raise ValueError(
            f"`inputs` must be a tensor, a map-style dataset or a DataLoader, got {type(inputs).__name__}."
        )
    for batch in inputs:
        if isinstance(batch, list | tuple):
            batch = batch[0]  # (x, y) batches: the inputs are x
        if not isinstance(batch, Tensor):
            raise ValueError(f"`inputs` yielded a {type(batch).__name__}; batches must be tensors or (x, y) tuples.")
        yield batch.reshape(batch.shape[0], -1)


def _checked(batch: Tensor, dimension: int | None) -> Tensor:
    batch = batch.to(torch.float64)
    if dimension is not None and batch.shape[1] != dimension:
        raise ValueError(f"`inputs` batches have {batch.shape[1]} features after {dimension} in an earlier batch.")
    if not bool(torch.isfinite(batch).all()):
        raise ValueError("`inputs` contains NaN or inf; clean or impute the inputs first.")
    return batch


def _principal_directions(inputs: Any, count: int, batch_size: int) -> tuple[Tensor, int]:
    """Top ``count`` eigenvectors of the input covariance (streamed: one pass, ``d × d`` memory)."""
    total: Tensor | None = None
    second: Tensor | None = None
    seen, dimension = 0, None
    for batch in _batches(inputs, batch_size):
        batch = _checked(batch, dimension)
        dimension = batch.shape[1]
        if count and dimension > MAX_PCA_DIMENSION:
            raise ValueError(
                f"principal directions need the {dimension} × {dimension} covariance; for inputs with more than "
                f"{MAX_PCA_DIMENSION} features pass `n_principal=0` (random and `extra_directions` remain)."
            )
        if count:
            total = batch.sum(0) if total is None else total + batch.sum(0)
            second = batch.T @ batch if second is None else second + batch.T @ batch
        seen += batch.shape[0]
    if dimension is None or seen == 0:
        raise ValueError("`inputs` is empty; pass at least one sample.")
    if not count:
        return torch.zeros(0, dimension, dtype=torch.float64), seen
    if total is None or second is None:  # count > 0 and seen > 0: every batch was summed
        raise AssertionError("no batch was summed")
    mean = total / seen
    covariance = second / seen - torch.outer(mean, mean)
    _, vectors = torch.linalg.eigh(covariance)
    return vectors[:, -min(count, dimension) :].flip(1).T.contiguous(), seen


def data_clusters(
    inputs: Tensor | Dataset | DataLoader,
    weights: Tensor | None = None,
    *,
    n_random: int = 256,
    n_principal: int = 16,
    extra_directions: Tensor | None = None,
    dilation: float = 2.0,
    max_mass: float = 0.05,
    min_cluster_mass: float | None = None,
    resolution: float = 0.1,
    radius_ratio: float = 1.05,
    centre_fraction: float = 0.25,
    batch_size: int = 4096,
    seed: int = 0,
) -> DataClusterReport:
    r"""Which training samples form small isolated clusters? (docs/theory.md §9, the paper's Definition 2.3.)

    For every direction ``u`` the projections ``v_k = ⟨u, x_k⟩`` are checked for Condition B without a window:
    every slab with ``2r ≥ h``, ``μ̄(P) ≥ m_min``, ``μ̄(P) > 0`` and ``μ̄(ΛP) ≤ m`` should have
    ``μ̄(ΛP) ≥ κ μ̄(P)``. The reported constant is the minimum of the per-direction brackets.

    Args:
        inputs: ``[N, ...]`` tensor, a map-style dataset, or a finite DataLoader (``x`` or ``(x, y)`` items, in a
            fixed order); datasets and loaders are streamed in batches, memory ``O(N × directions + d²)``.
        weights: optional sample weights ``μ̄`` (normalised here).
        n_random: number of random Gaussian directions (seeded by ``seed``).
        n_principal: number of top principal directions (needs ``d ≤ 4096``).
        extra_directions: ``[E, d]`` more directions (e.g. a first linear layer's weight rows); normalised here.
        dilation: ``Λ > 1``. Default 2: the slab doubled must gain mass.
        max_mass: ``m``, the largest mass of a *small* cluster's dilation. Default 0.05 (5 % of the data).
        min_cluster_mass: ``m_min``; clusters lighter than this are ignored. Default ``max(10/N, 0.005)``: a
            finite sample almost always has isolated extreme points (``m_min = 0`` would report them), and below
            a few dozen samples random fluctuations of well-spread data form "clusters" at fine resolutions.
        resolution: ``h`` per direction as a fraction of the projection's spread (its 5 %–95 % quantile range),
            so the check is scale free. Default 0.1: on 10,000 Gaussian samples the defaults certify every
            sampled direction (``κ_lo > 1``); at 0.05 with ``m_min = 10/N`` they report chance clusters.
        radius_ratio: ratio ``q`` of the radius grid of each bracket.
        centre_fraction: slab centres run over the grid ``(centre_fraction × h)ℤ`` (a certified bracket whose
            cost does not grow with ``N`` beyond one sort per direction).
        batch_size: streaming batch size.
        seed: seed of the random directions.

    Returns:
        a `DataClusterReport`.
    """
    dilation = check_finite_number(dilation, "dilation")
    if not dilation > 1:
        raise ValueError(f"`dilation` Λ must be > 1 (a slab's dilation must be strictly wider), got {dilation}.")
    resolution = check_positive(resolution, "resolution")
    max_mass = check_positive(max_mass, "max_mass")
    if max_mass > 1:
        raise ValueError(f"`max_mass` is a mass in (0, 1], got {max_mass}.")
    centre_fraction = check_positive(centre_fraction, "centre_fraction")
    if centre_fraction > 1:
        raise ValueError(f"`centre_fraction` must lie in (0, 1], got {centre_fraction}.")
    for name, count in (("n_random", n_random), ("n_principal", n_principal), ("batch_size", batch_size)):
        if not isinstance(count, int) or count < (1 if name == "batch_size" else 0):
            raise ValueError(
                f"`{name}` must be a {'positive' if name == 'batch_size' else 'non-negative'} integer, got {count!r}."
            )

    principal, num_samples = _principal_directions(inputs, n_principal, batch_size)
    dimension = principal.shape[1]
    generator = torch.Generator().manual_seed(seed)
    random = torch.randn(n_random, dimension, generator=generator, dtype=torch.float64)
    parts, kinds = [random, principal], ["random"] * n_random + ["principal"] * principal.shape[0]
    if extra_directions is not None:
        extra = torch.as_tensor(extra_directions).detach().to(torch.float64).cpu()
        if extra.dim() != 2 or extra.shape[1] != dimension:
            raise ValueError(
                f"`extra_directions` must have shape [E, {dimension}] (one direction per row), got {tuple(extra.shape)}."
            )
        if not bool(torch.isfinite(extra).all()):
            raise ValueError("`extra_directions` contains NaN or inf.")
        parts.append(extra)
        kinds += ["extra"] * extra.shape[0]
    directions = torch.cat(parts)
    norms = directions.norm(dim=1, keepdim=True)
    if directions.shape[0] == 0:
        raise ValueError("no directions to check: set `n_random`, `n_principal` or `extra_directions`.")
    if bool((norms == 0).any()):
        raise ValueError("a direction has norm zero (e.g. a dead unit's weight row); drop it from `extra_directions`.")
    directions = directions / norms

    projections = torch.cat([_checked(batch, dimension) @ directions.T for batch in _batches(inputs, batch_size)])
    if projections.shape[0] != num_samples:
        raise ValueError("`inputs` yielded a different number of samples on the second pass; use a fixed order.")
    mu = normalised_weights(weights, num_samples, projections.device)
    if min_cluster_mass is None:
        min_cluster_mass = min(max_mass, max(10.0 / num_samples, 0.005))
    min_cluster_mass = check_positive(min_cluster_mass, "min_cluster_mass", strict=False)
    if min_cluster_mass > max_mass:
        raise ValueError(f"`min_cluster_mass` must lie in [0, max_mass={max_mass}], got {min_cluster_mass}.")

    results: list[ConditionBResult] = []
    resolutions = []
    levels = torch.tensor([0.05, 0.95], dtype=torch.float64)
    for column in range(directions.shape[0]):
        values = SortedMargins(projections[:, column], mu, name="projections")
        low, high = (float(v) for v in torch.quantile(values.values, levels))
        spread = (high - low) or (float(values.values[-1] - values.values[0])) or 1.0
        width = resolution * spread
        resolutions.append(width)
        results.append(
            condition_b_constant(
                values,
                dilation,
                max_mass=max_mass,
                min_width=width,
                min_cluster_mass=min_cluster_mass,
                radius_ratio=radius_ratio,
                centre_spacing=centre_fraction * width,
            )
        )
    lower = torch.tensor([r.lower for r in results], dtype=torch.float64)
    upper = torch.tensor([r.upper for r in results], dtype=torch.float64)
    worst = int(torch.argmin(upper))
    return DataClusterReport(
        constant_lower=float(lower.min()),
        constant_upper=float(upper.min()),
        worst_direction=directions[worst],
        worst_direction_kind=kinds[worst],
        witness=results[worst].witness,
        witness_indices=results[worst].witness_indices,
        directions=directions,
        kinds=tuple(kinds),
        lower=lower,
        upper=upper,
        resolutions=torch.tensor(resolutions, dtype=torch.float64),
        max_mass=max_mass,
        min_cluster_mass=min_cluster_mass,
        dilation=dilation,
        num_samples=num_samples,
    )
