"""Theorems A and B as accuracy floors (docs/theory.md §4–§6): the §4 upper sum of ``Φ(U)`` for the Condition A
envelope ``U_A`` and the Condition B envelope ``U_B`` on uniform partitions of ``[0, η + η0]``, and the floor
``1 − Φ/log 2`` it gives; batched over many candidate rows for `lightning_stability.theory.certify`'s search."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .condition_a import condition_a_constants, condition_a_envelope_values
from .condition_b import condition_b_constant, condition_b_envelope_values
from .distribution import SortedMargins
from .envelope import DEFAULT_PARTITION_SIZE, slope_integrals, upper_sums, upper_sums_from_slopes
from .results import TheoremAFloor, TheoremBFloor
from .validation import check_finite_number, check_num_classes, check_positive, float64

__all__ = [
    "SEARCH_PARTITION_SIZE",
    "check_window",
    "floor_of_bound",
    "partition_pieces",
    "theorem_a_bounds",
    "theorem_a_floor",
    "theorem_b_bounds",
    "theorem_b_floor",
    "uniform_partitions",
]

_LOG2 = math.log(2.0)

SEARCH_PARTITION_SIZE = DEFAULT_PARTITION_SIZE
"""Pieces of the upper sums of ``Φ`` in `certify` and the ``theorem_*floor_of_bound`` functions (the same, so that
their floors reproduce each other): 4096, within 1e-3 relative of ``Φ`` (1024 was measured at 1.1e-3 for
``γ = 0.5``)."""


def check_window(eta: float, eta0: float, sorted_margins: SortedMargins) -> tuple[float, float, float]:
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


def floor_of_bound(bound: float) -> float:
    return min(1.0, max(0.0, 1.0 - bound / _LOG2))


def partition_pieces(size: int) -> int:
    if int(size) < 1:
        raise ValueError(f"`partition_size` must be a positive integer, got {size}.")
    return int(size)


def uniform_partitions(etas: Tensor, eta0s: Tensor, size: int, knots: Tensor | None = None) -> Tensor:
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


def theorem_a_bounds(rows: list[dict[str, float]], num_classes: int, size: int) -> Tensor:
    """``Φ(U_A)`` (§4 upper sums on uniform partitions) for every row of Theorem A parameters, in one batch."""
    column = {key: float64([row[key] for row in rows]) for key in rows[0]}
    # the partition and its slope integrals depend on the window (η, η0, λ0) only: once per window, not per γ
    windows, row_window = torch.unique(
        torch.stack([column["eta"], column["eta0"], column["lam0"]], dim=1), dim=0, return_inverse=True
    )
    partitions = uniform_partitions(windows[:, 0], windows[:, 1], size, knots=windows[:, 2])
    slopes = slope_integrals(partitions, windows[:, 0], num_classes)[row_window]
    values = condition_a_envelope_values(
        partitions[row_window, 1:], column["condition_a_constant"], column["gamma"], column["lam0"], column["zeta"]
    )
    return upper_sums_from_slopes(values, slopes, column["eta0"], num_classes)


def theorem_b_bounds(rows: list[dict[str, float]], num_classes: int, size: int) -> Tensor:
    """``Φ(U_B)`` (§4 upper sums on uniform partitions, ``U_B`` with ``κ_lo``) for every row, in one batch."""
    column = {key: float64([row[key] for row in rows]) for key in rows[0]}
    partitions = uniform_partitions(column["eta"], column["eta0"], size)
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
    eta, eta0, zeta = check_window(eta, eta0, sorted_margins)
    gamma = check_positive(gamma, "gamma")
    lam0 = eta + eta0 if lam0 is None else check_positive(lam0, "lam0")
    constant = float(condition_a_constants(sorted_margins, eta, float64(gamma), float64(lam0))[0, 0])
    row = dict(eta=eta, eta0=eta0, zeta=zeta, gamma=gamma, lam0=lam0, condition_a_constant=constant)
    bound = float(theorem_a_bounds([row], num_classes, partition_pieces(partition_size))[0])
    return TheoremAFloor(floor=floor_of_bound(bound), envelope_bound=bound, **row)


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
    eta, eta0, zeta = check_window(eta, eta0, sorted_margins)
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
    bound = float(theorem_b_bounds([row], num_classes, partition_pieces(partition_size))[0])
    return TheoremBFloor(floor=floor_of_bound(bound), envelope_bound=bound, **row)
