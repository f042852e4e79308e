"""Theorem A's upper sum on the documented partition, recomputed in 50-digit arithmetic (issue 16).

`theorem_a_floor` bounds ``Φ(U_A)`` by the §4 upper sum ``f_K(η0) + Σ_i U(a_{i+1}) (f_K(a_i − η) − f_K(a_{i+1} − η))``
on a partition of ``[0, D]`` that is uniform, or — when ``λ0`` lies inside ``(0, D)`` — uniform on ``[0, λ0]``
with ``round(M λ0 / D)`` pieces (at least 1, at most ``M − 1``) and uniform on ``[λ0, D]`` with the rest
(`certificate._uniform_partitions`). The mutation run found that no test pinned this partition: older tests
only bracket the bound between Riemann sums. Here the partition points are exact fractions, ``U_A`` is
evaluated by hand and the sum is taken with mpmath; the package must agree to 1e-13.

Margins 0.5, 1, 1.5, 3 with ``η = 1/2``, ``η0 = 2``: ``λ_k = 1, 3/2, 2, 7/2``, ``ζ = F(2) = 3/4`` and, for
``γ = 1`` and any ``λ0 ≥ 2``, ``C_A = max(1/4 / 1, 2/4 / (3/2), 3/4 / 2) = 3/8``, so ``U_A(λ) = min(3/4, 3λ/8)``.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath as mp
import pytest
import torch

from lightning_stability import theory
from tests.theory.oracles import fK_mp

MARGINS = torch.tensor([0.5, 1.0, 1.5, 3.0], dtype=torch.float64)
ETA, ETA0, K = Fraction(1, 2), Fraction(2), 3
SPAN = ETA + ETA0  # D = 5/2
ZETA, C = Fraction(3, 4), Fraction(3, 8)


def mpq(x: Fraction) -> mp.mpf:
    return mp.mpf(x.numerator) / x.denominator


def u_a(lam: Fraction, lam0: Fraction, constant: Fraction) -> Fraction:
    return min(ZETA, constant * lam) if lam <= lam0 else ZETA


def upper_sum(points: list[Fraction], lam0: Fraction, constant: Fraction = C) -> float:
    total = fK_mp(mpq(ETA0), K)
    for left, right in zip(points[:-1], points[1:]):
        total += mpq(u_a(right, lam0, constant)) * (fK_mp(mpq(left - ETA), K) - fK_mp(mpq(right - ETA), K))
    return float(total)


@pytest.mark.parametrize("pieces", [1, 3, 5, 7])
def test_uniform_partition_when_lambda0_is_the_window(pieces):
    floor = theory.theorem_a_floor(MARGINS, K, float(ETA), float(ETA0), 1.0, partition_size=pieces)
    assert (floor.zeta, floor.condition_a_constant, floor.lam0) == (0.75, 0.375, 2.5)
    points = [SPAN * i / pieces for i in range(pieces + 1)]
    assert floor.envelope_bound == pytest.approx(upper_sum(points, SPAN), rel=1e-13)
    # a λ0 beyond the window is the same uniform partition (U_A = min(ζ, Cλ) on all of [0, D])
    beyond = theory.theorem_a_floor(MARGINS, K, float(ETA), float(ETA0), 1.0, lam0=3.0, partition_size=pieces)
    assert beyond.envelope_bound == pytest.approx(upper_sum(points, Fraction(3)), rel=1e-13)


@pytest.mark.parametrize(
    "lam0,pieces,left",
    [
        (Fraction(9, 4), 4, 3),  # round(4 · 0.9) = 4 is clamped to M − 1 = 3: λ0 stays a partition point
        (Fraction(5, 4), 4, 2),  # round(4 · 0.5) = 2
        (Fraction(1, 8), 4, 1),  # round(0.2) = 0 is clamped to 1
        (Fraction(9, 4), 3, 2),  # round(2.7) = 3 -> 2
        (Fraction(3, 2), 2, 1),  # two pieces: [0, λ0] and [λ0, D] (not the uniform [0, 5/4, 5/2])
        (Fraction(1), 3, 1),  # round(1.2) = 1: one piece on [0, 1], where U_A = λ/4 rises (C_A = 1/4)
    ],
)
def test_lambda0_inside_the_window_is_a_partition_point(lam0, pieces, left):
    floor = theory.theorem_a_floor(MARGINS, K, float(ETA), float(ETA0), 1.0, lam0=float(lam0), partition_size=pieces)
    inner = [lam0 * i / left for i in range(left + 1)]
    outer = [lam0 + (SPAN - lam0) * j / (pieces - left) for j in range(1, pieces - left + 1)]
    # C_A = max over λ_k ≤ λ0 of F(−η + λ_k)/λ_k, with F(−η + λ_k) = (k + 1)/4 for λ_k = 1, 3/2, 2
    ratios = [Fraction(k + 1, 4) / lam for k, lam in enumerate([Fraction(1), Fraction(3, 2), Fraction(2)])]
    constant = max([Fraction(0)] + [r for r, lam in zip(ratios, [1, Fraction(3, 2), 2]) if lam <= lam0])
    assert floor.condition_a_constant == float(constant)
    expected = upper_sum(inner + outer, lam0, constant)
    assert floor.envelope_bound == pytest.approx(expected, rel=1e-13)


def test_one_piece_ignores_lambda0():
    floor = theory.theorem_a_floor(MARGINS, K, float(ETA), float(ETA0), 1.0, lam0=1.25, partition_size=1)
    # one piece [0, D], charged U_A(D) = ζ (D > λ0)
    expected = upper_sum([Fraction(0), SPAN], Fraction(5, 4))
    assert floor.envelope_bound == pytest.approx(expected, rel=1e-13)
