"""Condition A: the exact minimal constant ``C_A`` and the envelope ``U_A`` (docs/theory.md §5)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .distribution import SortedMargins
from .envelope import Envelope
from .validation import check_finite_number, check_positive, float64

__all__ = ["condition_a_constant", "condition_a_constants", "condition_a_envelope", "condition_a_envelope_values"]


def condition_a_constants(sorted_margins: SortedMargins, eta: float, gammas: Tensor, lam0s: Tensor) -> Tensor:
    r"""Exact ``C_A`` for several exponents and ranges at once, on pre-sorted margins.

    One pass: the ratios ``F(−η + λ_k)/λ_k^γ`` of the sorted ``λ_k`` are computed up to the largest range,
    and a running maximum gives every ``λ0`` (see `condition_a_constant`).

    Returns a float64 tensor of shape ``[len(lam0s), len(gammas)]``.
    """
    gammas = gammas.to(torch.float64).reshape(-1)
    lam0s = lam0s.to(torch.float64).reshape(-1)
    shifted = sorted_margins.values + eta  # λ_k = δ_k + η, ascending
    if float(shifted[0]) <= 0.0:
        return torch.full((lam0s.shape[0], gammas.shape[0]), math.inf, dtype=torch.float64)
    inside = torch.searchsorted(shifted, lam0s, right=True)  # how many λ_k ≤ λ0
    count = int(inside.max())
    if count == 0:
        return torch.zeros((lam0s.shape[0], gammas.shape[0]), dtype=torch.float64)
    lam = shifted[:count]
    # F(−η + λ_k) counts every sample with λ ≤ λ_k, ties included (weight after the last tied value)
    mass = sorted_margins.cdf_at_values()[:count]
    ratios = mass.unsqueeze(0) / torch.stack([_power(lam, gamma) for gamma in gammas.tolist()])
    running = torch.cummax(ratios, dim=1).values[:, (inside - 1).clamp_min(0)]
    return torch.where(inside > 0, running, 0.0).T.contiguous()  # 0 when no λ_k ≤ λ0


def _power(values: Tensor, exponent: float) -> Tensor:
    """``values ** exponent`` with a scalar exponent: torch then squares and takes square roots correctly rounded
    (a tensor of exponents goes through a general ``pow`` that is off by an ulp for some inputs) and is faster."""
    return values.pow(exponent)


def condition_a_constant(
    margins: Tensor, eta: float, gamma: float, lam0: float, *, weights: Tensor | None = None
) -> float:
    r"""Minimal constant of Condition A: ``C_A = sup_{0<λ≤λ0} F(−η+λ) / λ^γ`` (docs/theory.md §5).

    With ``λ_k = δ_k + η``: if some sample (of positive weight) has ``λ_k ≤ 0`` the bad set ``B_η`` is not
    empty and ``C_A = +∞``; otherwise the supremum of the step function sits at a jump, so

        ``C_A = max_{k : λ_k ≤ λ0} F(−η + λ_k) / λ_k^γ``   (0 if no ``λ_k ≤ λ0``),

    computed exactly in ``O(N log N)`` (sort, cumulative weights, ties take the weight after the last tie).

    Args:
        margins: ``[N]`` margins ``δ``.
        eta: bad threshold ``η``.
        gamma: exponent ``γ > 0``.
        lam0: range ``λ0 > 0`` (docs/theory.md takes ``λ0 ∈ (0, D]``).
        weights: optional sample weights.

    Returns:
        ``C_A`` as a float, ``math.inf`` when Condition A fails for every constant.
    """
    eta = check_finite_number(eta, "eta")
    gamma = check_positive(gamma, "gamma")
    lam0 = check_positive(lam0, "lam0")
    sorted_margins = SortedMargins(margins, weights)
    return float(condition_a_constants(sorted_margins, eta, float64(gamma), float64(lam0))[0, 0])


def condition_a_envelope_values(lam: Tensor, constant: Tensor, gamma: Tensor, lam0: Tensor, zeta: Tensor) -> Tensor:
    r"""``U_A(λ) = min(ζ, C λ^γ)`` for ``λ ≤ λ0``, ``ζ`` beyond, at ``lam [B, M]`` with per-row parameters ``[B]``."""
    lam = lam.to(torch.float64)
    constant, gamma, lam0, zeta = (x.to(torch.float64).unsqueeze(1) for x in (constant, gamma, lam0, zeta))
    positive = lam.clamp_min(0.0)
    powers = torch.empty_like(positive)
    row_gamma = gamma.expand(positive.shape[0], 1)[:, 0]
    for exponent in torch.unique(row_gamma).tolist():  # scalar exponents (`_power`): few distinct γ in a search
        rows = (row_gamma == exponent).nonzero().squeeze(1)
        powers[rows] = _power(positive[rows], exponent)
    power_law = torch.where(lam > 0, constant * powers, torch.zeros_like(lam))  # C = inf: U = ζ on λ > 0
    return torch.where(lam <= lam0, torch.minimum(power_law, zeta), zeta.expand_as(lam))


def condition_a_envelope(constant: float, gamma: float, lam0: float, zeta: float) -> Envelope:
    r"""Envelope of Theorem A: ``U_A(λ) = min(ζ, C λ^γ)`` for ``λ ≤ λ0`` and ``ζ`` beyond (docs/theory.md §5)."""
    gamma = check_positive(gamma, "gamma")
    lam0 = check_positive(lam0, "lam0")
    zeta = check_positive(zeta, "zeta", strict=False)
    constant = float(constant)
    if math.isnan(constant) or constant < 0:
        raise ValueError(f"`constant` must be a Condition A constant >= 0 (or inf), got {constant}.")
    parameters = [float64(value) for value in (constant, gamma, lam0, zeta)]

    def envelope(lam: Tensor) -> Tensor:
        return condition_a_envelope_values(lam.reshape(1, -1), *parameters).reshape(lam.shape)

    return envelope
