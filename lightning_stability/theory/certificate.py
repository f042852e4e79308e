"""The best certificate of an epoch (docs/theory.md §7): `certify` searches the grid of `CertificateGrid` for the
highest Theorem A and B floors (`lightning_stability.theory.floors`) and reports them with the Theorem 0 floor."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .condition_a import condition_a_constants
from .condition_b import condition_b_constant
from .distribution import SortedMargins
from .floors import SEARCH_PARTITION_SIZE, floor_of_bound, theorem_a_bounds, theorem_b_bounds
from .loss import loss_bounds, loss_floor
from .results import StabilityReport, TheoremAFloor, TheoremBFloor
from .validation import check_finite_number, check_num_classes, check_values, float64

__all__ = ["CertificateGrid", "certify"]


@dataclass(frozen=True)
class CertificateGrid:
    """The documented parameter grids over which `certify` searches (docs/theory.md §7).

    Attributes:
        zetas: targets for ``ζ``; ``η0`` is the smallest margin with ``F(η0) ≥ ζ`` (up to 1e-9 relative) and
            the reported ``ζ = F(η0)``.
        tau_fractions: ``η = −min δ + τ`` with ``τ = fraction × s``, ``s = (median δ − min δ)``
            (or the margin range, or 1, if that is zero); ``B_η = ∅`` by construction.
        gammas: exponents ``γ`` of Condition A, with ``λ0 = D = η + η0``.
        dilation: ``Λ`` of Condition B; ``m = ζ`` and the window ends at ``w = η0``.
        width_fractions: resolutions ``h = fraction × (η0 − min δ)`` of Condition B.
        cluster_mass_fractions: smallest cluster masses ``m_min = fraction × ζ``.
        radius_ratio: ratio ``q`` of the radius grid of the Condition B bracket.
        centre_spacing_fraction: centres of the Condition B bracket run over the grid ``(fraction × h)ℤ``
            (a certified bracket costing ``O(R · span / (fraction × h))``, see
            `condition_b_constant`); ``None`` uses exact breakpoints.
        mass_etas: thresholds ``η`` at which good and bad masses are reported.
        partition_size: pieces of the upper sum of ``Φ`` (docs/theory.md §4) of the reported floors.
        search_partition_size: pieces of the upper sums that rank the candidates (coarser, cheaper: every
            candidate's bound is still rigorous; only the best candidate of each theorem is then recomputed with
            ``partition_size``, so the reported floor is as tight as ``theorem_a_floor``/``theorem_b_floor`` give).
    """

    zetas: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
    tau_fractions: tuple[float, ...] = (1 / 1024, 1 / 256, 1 / 64, 1 / 16, 1 / 4)
    gammas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    dilation: float = 2.0
    width_fractions: tuple[float, ...] = (1 / 8,)
    cluster_mass_fractions: tuple[float, ...] = (0.05,)
    radius_ratio: float = 1.05
    centre_spacing_fraction: float | None = 1 / 8
    mass_etas: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
    partition_size: int = SEARCH_PARTITION_SIZE
    search_partition_size: int = 1024

    def __post_init__(self) -> None:
        for name in ("zetas", "tau_fractions", "gammas", "width_fractions", "cluster_mass_fractions", "mass_etas"):
            value = getattr(self, name)
            if not isinstance(value, tuple | list) or len(value) == 0:
                raise ValueError(f"grid `{name}` must be a non-empty sequence of numbers, got {value!r}.")
            object.__setattr__(self, name, tuple(check_finite_number(v, name) for v in value))
        if any(not 0 < z <= 1 for z in self.zetas):
            raise ValueError(f"grid `zetas` must lie in (0, 1], got {self.zetas}.")
        if any(f <= 0 for f in self.tau_fractions + self.gammas + self.width_fractions):
            raise ValueError("grids `tau_fractions`, `gammas` and `width_fractions` must be positive.")
        if any(not 0 <= f <= 1 for f in self.cluster_mass_fractions):
            raise ValueError(f"grid `cluster_mass_fractions` must lie in [0, 1], got {self.cluster_mass_fractions}.")
        if not self.dilation > 1:
            raise ValueError(f"grid `dilation` must be > 1, got {self.dilation}.")
        if not 1 < self.radius_ratio < self.dilation:
            raise ValueError(f"grid `radius_ratio` must lie in (1, dilation), got {self.radius_ratio}.")
        if self.centre_spacing_fraction is not None and not 0 < self.centre_spacing_fraction <= 1:
            raise ValueError(
                f"grid `centre_spacing_fraction` must be None or in (0, 1], got {self.centre_spacing_fraction}."
            )
        for name in ("partition_size", "search_partition_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"grid `{name}` must be a positive integer, got {getattr(self, name)}.")


def certify(
    margins: Tensor,
    num_classes: int,
    weights: Tensor | None = None,
    loss: float | None = None,
    *,
    sorted_margins: SortedMargins | None = None,
    **grid_overrides: Any,
) -> StabilityReport:
    r"""Every certificate of docs/theory.md §2–§7 for one parameter vector, with the best Theorem A/B floors.

    * accuracy, loss sandwich ``Σμ g(δ) ≤ L ≤ Σμ f_K(δ)`` (§2), Theorem 0 floors ``1 − L/log 2`` (§3);
    * good/bad masses on ``mass_etas``;
    * Theorem A (§5) over ``η = −min δ + τ``, ``η0 = ζ``-quantiles, ``γ``, with ``λ0 = D``;
    * Theorem B (§6) over the same ``(η, η0)`` and the resolution / cluster-mass grids, ``Λ = dilation``,
      ``m = ζ``, window ``w = η0``.

    The grids are those of `CertificateGrid`; override any of them by keyword (e.g. ``gammas=(1.0,)``).
    Every floor satisfies ``0 ≤ floor ≤ margin_loss_floor ≤ 1``.

    Args:
        margins: ``[N]`` margins ``δ``.
        num_classes: ``K >= 2``.
        weights: optional sample weights (normalised here).
        loss: the exact weighted cross-entropy loss, if known; Theorem 0 then uses it.
        sorted_margins: ``SortedMargins(margins, weights)``, if the caller has built it already (it costs a sort;
            the `StabilityMonitor` also reads its quantiles); it must hold the same margins and weights.

    Raises:
        ValueError: for invalid margins, weights, ``num_classes``, ``loss`` or grid values, an unknown grid
            parameter, or a ``sorted_margins`` that is not a `SortedMargins` of as many margins.
    """
    unknown = set(grid_overrides) - {f.name for f in dataclasses.fields(CertificateGrid)}
    if unknown:
        valid = ", ".join(f.name for f in dataclasses.fields(CertificateGrid))
        raise ValueError(f"unknown certify grid parameter(s) {sorted(unknown)}; valid ones are: {valid}.")
    grid = CertificateGrid(**grid_overrides)
    num_classes = check_num_classes(num_classes)
    values = check_values(margins)
    if sorted_margins is None:
        sorted_margins = SortedMargins(values, weights)
    elif not isinstance(sorted_margins, SortedMargins):
        raise ValueError(
            "`sorted_margins` must be a SortedMargins built from these margins and weights, got "
            f"{type(sorted_margins).__name__}."
        )
    elif sorted_margins.size != values.shape[0]:
        raise ValueError(
            f"`sorted_margins` holds {sorted_margins.size} margins but `margins` has {values.shape[0]}; pass "
            "SortedMargins(margins, weights) of the same margins."
        )

    loss_lower, loss_upper = loss_bounds(values, num_classes, weights)
    if loss is not None:
        loss = check_finite_number(loss, "loss")
        if loss < 0:
            raise ValueError(f"`loss` must be >= 0 (a cross entropy), got {loss}.")
    margin_loss_floor = loss_floor(loss_upper)
    etas = torch.tensor(grid.mass_etas, dtype=torch.float64, device=sorted_margins.values.device)
    good = 1.0 - sorted_margins.cdf(etas)
    bad = sorted_margins.mass_below(-etas)
    accuracy = float(1.0 - sorted_margins.cdf(etas.new_zeros(1))[0])

    theorem_a, theorem_b = _best_floors(sorted_margins, num_classes, grid)
    return StabilityReport(
        num_samples=values.shape[0],
        num_classes=num_classes,
        accuracy=accuracy,
        loss=loss,
        loss_lower=loss_lower,
        loss_upper=loss_upper,
        loss_floor=loss_floor(loss) if loss is not None else margin_loss_floor,
        margin_loss_floor=margin_loss_floor,
        margin_min=sorted_margins.minimum,
        mass_etas=grid.mass_etas,
        good_masses=tuple(good.tolist()),
        bad_masses=tuple(bad.tolist()),
        theorem_a=theorem_a,
        theorem_b=theorem_b,
    )


def _best_floors(
    sorted_margins: SortedMargins, num_classes: int, grid: CertificateGrid
) -> tuple[TheoremAFloor, TheoremBFloor]:
    """Search the grids of §7; every candidate is a valid floor, the best of each theorem is returned."""
    values = sorted_margins.values.cpu()
    lowest = sorted_margins.minimum
    median = sorted_margins.quantile_value(0.5)
    scale = (median - lowest) or (float(values[-1]) - lowest) or 1.0
    eta0s = sorted({sorted_margins.quantile_value(z) for z in grid.zetas})
    eta0s = [e for e in eta0s if e > lowest] or [lowest + scale]
    zetas = sorted_margins.cdf(torch.tensor(eta0s, dtype=torch.float64)).tolist()
    gammas = torch.tensor(grid.gammas, dtype=torch.float64)

    a_candidates: list[dict[str, Any]] = []
    b_candidates: list[dict[str, Any]] = []
    for tau in (f * scale for f in grid.tau_fractions):
        eta = tau - lowest
        spans = [eta + eta0 for eta0 in eta0s]
        constants_by_window = condition_a_constants(sorted_margins, eta, gammas, float64(spans)).tolist()
        for eta0, zeta, span, constants in zip(eta0s, zetas, spans, constants_by_window, strict=True):
            for gamma, constant in zip(grid.gammas, constants, strict=True):
                a_candidates.append(
                    dict(eta=eta, eta0=eta0, zeta=zeta, gamma=gamma, lam0=span, condition_a_constant=constant)
                )
            for width_fraction in grid.width_fractions:
                min_width = width_fraction * (eta0 - lowest)
                for mass_fraction in grid.cluster_mass_fractions:
                    min_cluster_mass = mass_fraction * zeta
                    b_candidates.append(
                        dict(
                            eta=eta,
                            eta0=eta0,
                            zeta=zeta,
                            dilation=grid.dilation,
                            max_mass=zeta,
                            min_cluster_mass=min_cluster_mass,
                            min_width=min_width,
                            kappa_lower=math.inf,  # set below for every candidate that can still win
                            kappa_upper=math.inf,
                        )
                    )
    size, search_size = int(grid.partition_size), int(grid.search_partition_size)
    b_bounds = _theorem_b_search(sorted_margins, num_classes, grid, b_candidates, search_size)
    # rank every candidate with the coarse upper sums, then recompute the winner's bound with the fine one
    best = int(torch.argmin(theorem_a_bounds(a_candidates, num_classes, search_size)))
    bound = float(theorem_a_bounds([a_candidates[best]], num_classes, size)[0])
    best_a = TheoremAFloor(floor=floor_of_bound(bound), envelope_bound=bound, **a_candidates[best])
    best = int(torch.argmin(b_bounds))
    bound = float(theorem_b_bounds([b_candidates[best]], num_classes, size)[0])
    best_b = TheoremBFloor(floor=floor_of_bound(bound), envelope_bound=bound, **b_candidates[best])
    assert best_a is not None and best_b is not None  # the grids are non-empty
    return best_a, best_b


def _theorem_b_search(
    sorted_margins: SortedMargins,
    num_classes: int,
    grid: CertificateGrid,
    candidates: list[dict[str, Any]],
    search_size: int,
) -> Tensor:
    """The ranking bounds ``Φ(U_B)`` (coarse upper sums) of the Theorem B candidates, computing the Condition B
    bracket (the expensive part) only for windows that can still hold the winner; fills in their ``κ``.

    ``U_B`` falls pointwise as ``κ`` grows and the upper sums have nonnegative weights, so the bound with
    ``κ = ∞`` is a lower bound of every candidate's bound. Windows ``(η0, h, m_min)`` are visited in the order of
    their best such optimistic bound; a window whose optimistic bounds all exceed the best bound found so far
    cannot contain the minimum and is skipped (its candidates keep ``+inf``). The minimum, and the first
    candidate attaining it, are those of the exhaustive search.
    """
    optimistic = theorem_b_bounds(candidates, num_classes, search_size)
    bounds = torch.full_like(optimistic, math.inf)
    windows: dict[tuple[float, float, float], list[int]] = {}
    for index, row in enumerate(candidates):
        windows.setdefault((row["eta0"], row["min_width"], row["min_cluster_mass"]), []).append(index)
    order = sorted(windows, key=lambda key: float(optimistic[windows[key]].min()))
    best = math.inf
    for key in order:
        members = windows[key]
        if float(optimistic[members].min()) > best:  # every bound of this window is ≥ its optimistic one
            continue
        eta0, min_width, min_cluster_mass = key
        spacing = None if grid.centre_spacing_fraction is None else grid.centre_spacing_fraction * min_width
        bracket = condition_b_constant(
            sorted_margins,
            grid.dilation,
            max_mass=candidates[members[0]]["zeta"],
            min_width=min_width,
            min_cluster_mass=min_cluster_mass,
            window_end=eta0,
            radius_ratio=grid.radius_ratio,
            centre_spacing=spacing,
        )
        for index in members:
            candidates[index]["kappa_lower"], candidates[index]["kappa_upper"] = bracket.lower, bracket.upper
        bounds[members] = theorem_b_bounds([candidates[index] for index in members], num_classes, search_size)
        best = min(best, float(bounds[members].min()))
    return bounds
