"""Theorems A and B as floors, and the best certificate of an epoch (docs/theory.md §5–§7)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .condition_a import condition_a_constants, condition_a_envelope_values
from .condition_b import condition_b_constant, condition_b_envelope_values
from .distribution import SortedMargins
from .envelope import DEFAULT_PARTITION_SIZE, slope_integrals, upper_sums, upper_sums_from_slopes
from .loss import loss_bounds, loss_floor
from .results import StabilityReport, TheoremAFloor, TheoremBFloor
from .validation import check_finite_number, check_num_classes, check_positive, check_values, float64

__all__ = [
    "SEARCH_PARTITION_SIZE",
    "CertificateGrid",
    "certify",
    "theorem_a_floor",
    "theorem_b_floor",
]

_LOG2 = math.log(2.0)

SEARCH_PARTITION_SIZE = DEFAULT_PARTITION_SIZE
"""Pieces of the upper sums of ``Φ`` in `certify` and the ``theorem_*_floor`` functions (the same, so that
their floors reproduce each other): 4096, within 1e-3 relative of ``Φ`` (1024 was measured at 1.1e-3 for
``γ = 0.5``)."""


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


def _check_window(eta: float, eta0: float, sorted_margins: SortedMargins) -> tuple[float, float, float]:
    eta = check_finite_number(eta, "eta")
    eta0 = check_finite_number(eta0, "eta0")
    if not -eta < eta0:
        raise ValueError(f"need −eta < eta0, got eta={eta}, eta0={eta0}.")
    if sorted_margins.minimum < -eta:
        raise ValueError(
            f"the bad set B_eta is not empty: min margin {sorted_margins.minimum:.6g} < −eta = {-eta:.6g}; "
            "choose eta >= −min(margins)."
        )
    zeta = float(sorted_margins.cdf(float64(eta0))[0])
    return eta, eta0, zeta


def _floor(bound: float) -> float:
    return min(1.0, max(0.0, 1.0 - bound / _LOG2))


def _partition(size: int) -> int:
    if int(size) < 1:
        raise ValueError(f"`partition_size` must be a positive integer, got {size}.")
    return int(size)


def _uniform_partitions(etas: Tensor, eta0s: Tensor, size: int, knots: Tensor | None = None) -> Tensor:
    """``[B, size + 1]`` partitions ``0 = a_0 < … < a_size = D`` of every row's ``[0, η + η0]``.

    Uniform, or, where a row's ``knot`` lies inside ``(0, D)`` (``λ0`` of Theorem A, where ``U_A`` jumps to ``ζ``),
    uniform on ``[0, knot]`` and on ``[knot, D]`` with the knot as a partition point.
    """
    spans = etas + eta0s
    steps = torch.arange(size + 1, dtype=torch.float64)
    partitions = spans.unsqueeze(1) * (steps / size)
    if knots is not None:
        inside = (knots > 0) & (knots < spans)
        if bool(inside.any()):  # certify's λ0 = D puts no knot inside: nothing to split
            left = (size * knots / spans).round().clamp(1, size - 1) if size > 1 else torch.ones_like(spans)
            split = torch.where(
                steps <= left.unsqueeze(1),
                knots.unsqueeze(1) * steps / left.unsqueeze(1),
                knots.unsqueeze(1)
                + (spans - knots).unsqueeze(1) * (steps - left.unsqueeze(1)) / (size - left).unsqueeze(1),
            )
            partitions = torch.where(inside.unsqueeze(1) & (size > 1), split, partitions)
    partitions[:, -1] = spans
    return partitions


def _theorem_a_bounds(rows: list[dict[str, float]], num_classes: int, size: int) -> Tensor:
    """``Φ(U_A)`` (§4 upper sums on uniform partitions) for every row of Theorem A parameters, in one batch."""
    column = {key: float64([row[key] for row in rows]) for key in rows[0]}
    # the partition and its slope integrals depend on the window (η, η0, λ0) only: once per window, not per γ
    windows, row_window = torch.unique(
        torch.stack([column["eta"], column["eta0"], column["lam0"]], dim=1), dim=0, return_inverse=True
    )
    partitions = _uniform_partitions(windows[:, 0], windows[:, 1], size, knots=windows[:, 2])
    slopes = slope_integrals(partitions, windows[:, 0], num_classes)[row_window]
    values = condition_a_envelope_values(
        partitions[row_window, 1:], column["condition_a_constant"], column["gamma"], column["lam0"], column["zeta"]
    )
    return upper_sums_from_slopes(values, slopes, column["eta0"], num_classes)


def _theorem_b_bounds(rows: list[dict[str, float]], num_classes: int, size: int) -> Tensor:
    """``Φ(U_B)`` (§4 upper sums on uniform partitions, ``U_B`` with ``κ_lo``) for every row, in one batch."""
    column = {key: float64([row[key] for row in rows]) for key in rows[0]}
    partitions = _uniform_partitions(column["eta"], column["eta0"], size)
    spans = column["eta"] + column["eta0"]
    values = condition_b_envelope_values(
        partitions[:, 1:],
        column["kappa_lower"],
        rows[0]["dilation"],
        column["zeta"],
        column["min_cluster_mass"],
        column["min_width"],
        spans,
    )
    return upper_sums(values, partitions, column["eta"], column["eta0"], num_classes)


def theorem_a_floor(
    margins: Tensor,
    num_classes: int,
    eta: float,
    eta0: float,
    gamma: float,
    *,
    lam0: float | None = None,
    weights: Tensor | None = None,
    partition_size: int = SEARCH_PARTITION_SIZE,
) -> TheoremAFloor:
    r"""Theorem A floor ``1 − Φ(U_A)/log 2`` for given parameters (docs/theory.md §5).

    ``ζ = F(η0)``, ``C = C_A(η, γ, λ0)`` exact, ``U_A(λ) = min(ζ, C λ^γ)`` on ``(0, λ0]`` and ``ζ`` beyond,
    ``Φ(U) = f_K(η0) + ∫_0^D U(λ) φ_K(λ − η) dλ`` as a rigorous upper sum; ``λ0`` defaults to ``D = η + η0``.
    Requires ``B_η = ∅`` (``min δ ≥ −η``) and ``−η < η0``.
    """
    num_classes = check_num_classes(num_classes)
    sorted_margins = SortedMargins(margins, weights)
    eta, eta0, zeta = _check_window(eta, eta0, sorted_margins)
    gamma = check_positive(gamma, "gamma")
    lam0 = eta + eta0 if lam0 is None else check_positive(lam0, "lam0")
    constant = float(condition_a_constants(sorted_margins, eta, float64(gamma), float64(lam0))[0, 0])
    row = dict(eta=eta, eta0=eta0, zeta=zeta, gamma=gamma, lam0=lam0, condition_a_constant=constant)
    bound = float(_theorem_a_bounds([row], num_classes, _partition(partition_size))[0])
    return TheoremAFloor(floor=_floor(bound), envelope_bound=bound, **row)


def theorem_b_floor(
    margins: Tensor,
    num_classes: int,
    eta: float,
    eta0: float,
    *,
    dilation: float = 2.0,
    min_width: float | None = None,
    min_cluster_mass: float | None = None,
    weights: Tensor | None = None,
    radius_ratio: float = 1.05,
    centre_spacing: float | None = None,
    partition_size: int = SEARCH_PARTITION_SIZE,
) -> TheoremBFloor:
    r"""Theorem B floor ``1 − Φ(U_B)/log 2`` for given parameters (docs/theory.md §6).

    Condition B is bracketed on the margins with window ``w = η0``, cap ``m = ζ = F(η0)``, resolution ``h``
    (default ``(η0 − min δ)/8``) and cluster mass ``m_min`` (default ``ζ/20``); the envelope of Lemma 3 uses
    the certified ``κ_lo`` (a constant with which Condition B provably holds).
    """
    num_classes = check_num_classes(num_classes)
    sorted_margins = SortedMargins(margins, weights)
    eta, eta0, zeta = _check_window(eta, eta0, sorted_margins)
    span = eta + eta0
    if min_width is None:
        min_width = (eta0 - sorted_margins.minimum) / 8 or span / 8
    if min_cluster_mass is None:
        min_cluster_mass = zeta / 20
    bracket = condition_b_constant(
        sorted_margins,
        dilation,
        max_mass=max(zeta, 1e-300),
        min_width=min_width,
        min_cluster_mass=min_cluster_mass,
        window_end=eta0,
        radius_ratio=radius_ratio,
        centre_spacing=centre_spacing,
    )
    row = dict(
        eta=eta,
        eta0=eta0,
        zeta=zeta,
        dilation=float(dilation),
        max_mass=zeta,
        min_cluster_mass=min_cluster_mass,
        min_width=min_width,
        kappa_lower=bracket.lower,
        kappa_upper=bracket.upper,
    )
    bound = float(_theorem_b_bounds([row], num_classes, _partition(partition_size))[0])
    return TheoremBFloor(floor=_floor(bound), envelope_bound=bound, **row)


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
    best = int(torch.argmin(_theorem_a_bounds(a_candidates, num_classes, search_size)))
    bound = float(_theorem_a_bounds([a_candidates[best]], num_classes, size)[0])
    best_a = TheoremAFloor(floor=_floor(bound), envelope_bound=bound, **a_candidates[best])
    best = int(torch.argmin(b_bounds))
    bound = float(_theorem_b_bounds([b_candidates[best]], num_classes, size)[0])
    best_b = TheoremBFloor(floor=_floor(bound), envelope_bound=bound, **b_candidates[best])
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
    optimistic = _theorem_b_bounds(candidates, num_classes, search_size)
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
        bounds[members] = _theorem_b_bounds([candidates[index] for index in members], num_classes, search_size)
        best = min(best, float(bounds[members].min()))
    return bounds
