"""Error-free float64 arithmetic: exact sums, products and inward rounding for the Condition B bracket.

The bracket of docs/theory.md §6 tests, for float inputs, whether a value ``v`` lies in an interval ``[c ± r]``
or ``[c ± Λr]`` and whether a dilated interval stays left of the window end (``c + Λr ≤ w``). Evaluated in
plain float64 these tests can fail by one rounding (``−0.3 + 3·0.3 = 0.5999999999999999 < 0.6``), and an
interval that should hold a value misses it. The helpers here evaluate them exactly in the float inputs:

* TwoSum (Knuth): ``s = fl(a + b)`` and ``e = (a − (s − b')) + (b − b')`` with ``b' = s − a``; then
  ``a + b = s + e`` exactly.
* TwoProduct (Dekker, with Veltkamp's splitting by ``2^27 + 1``): ``p = fl(a·b)`` and a float ``e`` with
  ``a·b = p + e`` exactly, for magnitudes in ``[2^−400, 2^400]`` (no step overflows, no error term underflows).
* Inward rounding: for an exact radius ``ρ = radius + radius_error`` the interval ends ``RU(c − ρ)`` and
  ``RD(c + ρ)``, so that a float ``v`` lies in the exact ``[c ± ρ]`` iff ``RU(c − ρ) ≤ v ≤ RD(c + ρ)``.
* Dilations: per radius ``r``, ``fl(Λr)``, its exact error ``Λr − fl(Λr)`` and ``RD(w − Λr)``, the largest float
  centre ``c`` with ``c + Λr ≤ w``; outside the safe range of TwoProduct the same values come from
  `fractions.Fraction`.

Used by `lightning_stability.theory.condition_b`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import Tensor


def _two_sum(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly (Knuth's TwoSum)."""
    s = a + b
    b_part = s - a
    return s, (a - (s - b_part)) + (b - b_part)


def _nearest_and_residual(a: Tensor, b: Tensor, b_error: Tensor) -> tuple[Tensor, Tensor]:
    """``(y, ρ)`` with ``a + b + b_error = y + ρ`` exactly, ``y`` the float nearest to that sum and ``ρ`` a float
    of the residual's sign (``|b_error|`` at most half an ulp of ``b``), by three TwoSums: the residual is smaller
    than the gap to ``y``'s neighbours, so its sign says on which side of ``y`` the exact sum lies."""
    s, e2 = _two_sum(a, b)
    t, e3 = _two_sum(e2, b_error)
    y, e4 = _two_sum(s, t)
    return y, e4 + e3


def _rounded_ends(centres: Tensor, radius: Tensor, radius_error: Tensor) -> tuple[Tensor, Tensor]:
    """``(RU(c − ρ), RD(c + ρ))`` for the exact radius ``ρ = radius + radius_error`` (``|radius_error|`` at most
    half an ulp of ``radius``): the float ends of ``[c ± ρ]`` rounded inward to floats, so that a float ``v`` lies
    in the exact interval iff ``RU(c − ρ) ≤ v ≤ RD(c + ρ)`` (`_nearest_and_residual` for each end).
    """
    high, high_residual = _nearest_and_residual(centres, radius, radius_error)
    low, low_residual = _nearest_and_residual(centres, -radius, -radius_error)
    high = torch.where(high_residual < 0, torch.nextafter(high, high.new_tensor(-math.inf)), high)
    low = torch.where(low_residual > 0, torch.nextafter(low, low.new_tensor(math.inf)), low)
    return low, high


_SPLITTER = 134217729.0  # 2**27 + 1: Veltkamp's splitting constant for float64
_SAFE_RANGE = (2.0**-400, 2.0**400)
"""Magnitudes for which `_two_product` is exact: no step of the splitting overflows, no error term underflows."""


def _two_product(a: Tensor, b: float) -> tuple[Tensor, Tensor]:
    """``(p, e)`` with ``p = fl(a·b)`` and ``a·b = p + e`` exactly (Dekker's TwoProduct with Veltkamp's
    splitting), for float64 ``a`` and ``b`` whose magnitudes lie in ``_SAFE_RANGE``."""

    def split(x: Tensor) -> tuple[Tensor, Tensor]:
        scaled = _SPLITTER * x
        high = scaled - (scaled - x)
        return high, x - high

    factor = torch.full_like(a, b)
    product = a * factor
    a_high, a_low = split(a)
    b_high, b_low = split(factor)
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    return product, error


def _exact_dilations(radii: list[float], dilation: float, window_end: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per radius ``r``: ``fl(Λr)``, the exact error ``Λr − fl(Λr)`` (a float) and ``RD(w − Λr)``, the largest
    float centre ``c`` with ``c + Λr ≤ w`` exactly (``inf`` for an unbounded window).

    Vectorised with error-free transformations (`_two_product`, then `_nearest_and_residual` for
    ``w − fl(Λr) − error``); outside their safe range (radii or ``Λ`` beyond ``2^±400``, or ``|w| > 2^400``)
    the same three values are computed with exact rationals."""
    low, high = _SAFE_RANGE
    safe = all(low <= abs(x) <= high for x in (min(radii), max(radii), dilation)) and (
        math.isinf(window_end) or abs(window_end) <= high
    )
    if not safe:
        return _exact_dilations_rational(radii, dilation, window_end)
    scaled, errors = _two_product(torch.tensor(radii, dtype=torch.float64), dilation)
    if math.isinf(window_end):
        caps = torch.full_like(scaled, window_end)
    else:
        room, residual = _nearest_and_residual(torch.full_like(scaled, window_end), -scaled, -errors)
        caps = torch.where(residual < 0, torch.nextafter(room, room.new_tensor(-math.inf)), room)
    return scaled, errors, caps


def _exact_dilations_rational(radii: list[float], dilation: float, window_end: float) -> tuple[Tensor, Tensor, Tensor]:
    """`_exact_dilations` with `fractions.Fraction` (any finite magnitudes; slow: one rational per radius)."""
    scaled, errors, caps = [], [], []
    for radius in radii:
        exact = Fraction(dilation) * Fraction(radius)
        nearest = dilation * radius
        scaled.append(nearest)
        errors.append(float(exact - Fraction(nearest)))
        if math.isinf(window_end):
            caps.append(math.inf)
        else:
            room = Fraction(window_end) - exact
            cap = float(room)
            caps.append(math.nextafter(cap, -math.inf) if Fraction(cap) > room else cap)
    return (
        torch.tensor(scaled, dtype=torch.float64),
        torch.tensor(errors, dtype=torch.float64),
        torch.tensor(caps, dtype=torch.float64),
    )
