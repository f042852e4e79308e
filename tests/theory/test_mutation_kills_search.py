"""The batched pieces of `certify`'s Theorem A search, row by row (issue 16, the mutation re-run of issue 15's
speed changes; see TESTING.md).

`certify` ranks its Theorem A candidates with `certificate._theorem_a_bounds` on many rows at once (partitions
and slope integrals shared per window, one scalar exponent per distinct ``γ``) and then recomputes the winner
alone, so a batch that mixes rows up only changes the ranking: the floors stay valid and the older tests, which
check floors against independent integrals, still pass. Here each batched result must equal the same function
on that row alone, and `condition_a_constants` / `condition_a_envelope_values` (public) must follow their
definitions for ranges that hold no ``λ_k`` and for rows of different exponents.
"""

from __future__ import annotations

import math

import torch

from lightning_stability import theory
from lightning_stability.theory import certificate
from lightning_stability.theory.condition_a import condition_a_constants, condition_a_envelope_values

MARGINS = torch.tensor([0.5, 1.0, 1.5, 3.0], dtype=torch.float64)


def test_a_range_below_every_lambda_has_constant_zero_beside_one_that_holds_some() -> None:
    """``λ_k = δ_k + η = 1, 1.5, 2, 3.5`` (η = 0.5): ``C_A(λ0 = 0.75) = 0`` (no ``λ_k ≤ λ0``), and for
    ``λ0 = 2``, ``γ = 1``: ``max(1/4 / 1, 2/4 / 1.5, 3/4 / 2) = 3/8``; ``γ = 2``: ``max(1/4, 2/9, 3/16) = 1/4``."""
    sorted_margins = theory.SortedMargins(MARGINS)
    gammas = torch.tensor([1.0, 2.0], dtype=torch.float64)
    constants = condition_a_constants(sorted_margins, 0.5, gammas, torch.tensor([0.75, 2.0], dtype=torch.float64))
    assert constants.tolist() == [[0.0, 0.0], [0.375, 0.25]]


def test_envelope_rows_with_different_exponents_follow_the_definition() -> None:
    """``U_A(λ) = min(ζ, C λ^γ)`` on ``λ ≤ λ0``, ``ζ`` beyond, each row with its own ``C, γ, λ0, ζ``."""
    lam = torch.tensor([[0.0, 0.5, 1.0, 2.0, 3.0]] * 3, dtype=torch.float64)
    constant = torch.tensor([0.25, 0.25, 2.0], dtype=torch.float64)
    gamma = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    lam0 = torch.tensor([2.5, 2.5, 1.0], dtype=torch.float64)
    zeta = torch.tensor([0.5, 0.5, 0.75], dtype=torch.float64)
    got = condition_a_envelope_values(lam, constant, gamma, lam0, zeta)
    expected = [
        [min(z, c * x**g) if x <= l0 else z for x in row]
        for row, c, g, l0, z in zip(lam.tolist(), constant.tolist(), gamma.tolist(), lam0.tolist(), zeta.tolist())
    ]
    assert got.tolist() == expected
    # a [1, M] row of parameters against several rows of λ: broadcast, one exponent for all
    single = condition_a_envelope_values(lam[:2], constant[:1], gamma[1:2], lam0[:1], zeta[:1])
    assert single.tolist() == [[min(0.5, 0.25 * x**2) for x in row] for row in lam[:2].tolist()]


def test_batched_theorem_a_bounds_equal_each_row_alone() -> None:
    """Rows of two windows and three exponents in one batch give, row for row, the bound of that row alone."""
    rows = []
    for eta, eta0 in ((0.5, 2.0), (0.25, 1.25)):
        for gamma, constant in ((0.5, 0.3), (1.0, 0.375), (2.0, 0.25)):
            zeta = float(theory.SortedMargins(MARGINS).cdf(torch.tensor([eta0], dtype=torch.float64))[0])
            rows.append(
                dict(eta=eta, eta0=eta0, zeta=zeta, gamma=gamma, lam0=eta + eta0, condition_a_constant=constant)
            )
    # and one row whose λ0 lies inside (0, D): its own partition is split at λ0, the others' stay uniform
    rows.append(dict(rows[0], lam0=1.25, condition_a_constant=0.375, gamma=1.0))
    batched = certificate._theorem_a_bounds(rows, 3, 64)
    alone = [float(certificate._theorem_a_bounds([row], 3, 64)[0]) for row in rows]
    assert batched.shape == (len(rows),)
    assert batched.tolist() == alone
    assert len(set(alone)) == len(alone) and all(math.isfinite(bound) for bound in alone)


def test_batched_upper_sums_equal_each_row_alone() -> None:
    """`envelope.upper_sums` (Theorem B's search ranks its candidates with it) sums each row by itself."""
    from lightning_stability.theory.envelope import upper_sums

    partition = torch.tensor([[0.0, 0.5, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    values = torch.tensor([[0.1, 0.2, 0.3], [0.05, 0.4, 0.4]], dtype=torch.float64)
    eta = torch.tensor([0.5, 1.0], dtype=torch.float64)
    eta0 = torch.tensor([1.5, 2.0], dtype=torch.float64)
    batched = upper_sums(values, partition, eta, eta0, 4)
    alone = [
        float(upper_sums(values[i : i + 1], partition[i : i + 1], eta[i : i + 1], eta0[i : i + 1], 4)[0])
        for i in (0, 1)
    ]
    assert batched.tolist() == alone and alone[0] != alone[1]


def test_exact_dilations_of_radii_near_the_largest_floats_stay_exact() -> None:
    """Radii above 2^1024 / 2^27 ≈ 1.3e300 would overflow the splitting of the error-free product: they take the rational path."""
    from fractions import Fraction

    from lightning_stability.theory import condition_b

    radii = [1.5e300, 4e300]
    scaled, errors, caps = condition_b._exact_dilations(radii, 3.0, math.inf)
    for index, radius in enumerate(radii):
        assert Fraction(float(scaled[index])) + Fraction(float(errors[index])) == 3 * Fraction(radius)
    assert bool(torch.isfinite(errors).all()) and caps.tolist() == [math.inf, math.inf]
