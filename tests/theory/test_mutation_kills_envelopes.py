"""Envelopes, Lemma 2's bound and the window check (issue 16, see TESTING.md).

Gaps the mutation run exposed:

* ``U_A`` / ``U_B`` evaluated at a 1-D tensor of *odd* length (every older caller used an even number of
  points), checked against the formulas of docs/theory.md §5/§6 by hand;
* ``ζ = 0`` is a valid envelope height (``check_positive(..., strict=False)``);
* `envelope_loss_bound` ignores extra breakpoints outside ``(0, D)``;
* ``−η < η0`` is strict: ``D = η + η0 = 0`` is refused by every entry point.

Expected values come from the closed forms (a constant envelope ``U ≡ ζ`` has
``Φ = (1 − ζ) f_K(η0) + ζ f_K(−η)``, tests/theory/oracles.py).
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath as mp
import pytest
import torch

from lightning_stability import theory
from tests.theory.oracles import fK_mp, phi_trivial_closed_form

LAMBDAS = torch.tensor([0.0, 0.25, 0.5, 1.0, 4.0], dtype=torch.float64)  # five points, one beyond λ0 = 2


def test_condition_a_envelope_on_an_odd_number_of_points():
    envelope = theory.condition_a_envelope(0.5, 2.0, 2.0, 0.25)  # min(ζ, C λ^γ) on λ ≤ λ0, ζ beyond
    # 0.5 λ²: 0, 1/32, 1/8, 1/2 -> capped at 1/4; λ = 4 > λ0: ζ
    assert envelope(LAMBDAS).tolist() == [0.0, 0.03125, 0.125, 0.25, 0.25]
    assert envelope(LAMBDAS[:3]).tolist() == [0.0, 0.03125, 0.125]
    assert envelope(LAMBDAS.reshape(5, 1)).shape == (5, 1)  # the input's shape is kept


def test_condition_b_envelope_on_an_odd_number_of_points():
    # U_B(λ) = min(ζ, max(m_min, ζ κ^{−J(λ)})), J = floor(log_Λ(D / max(λ, h/2))): κ = 2, Λ = 2, ζ = 1/2,
    # m_min = 1/64, h = 1/4, D = 4: J(0) = J(1/8 cap) = 5, J(1/4) = 4, J(1/2) = 3, J(1) = 2, J(4) = 0
    envelope = theory.condition_b_envelope(2.0, 2.0, 0.5, 1 / 64, 0.25, 4.0)
    assert envelope(LAMBDAS).tolist() == [1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 2]
    assert envelope(LAMBDAS.reshape(5, 1)).shape == (5, 1)


@pytest.mark.parametrize(
    "make",
    [
        lambda: theory.condition_a_envelope(3.0, 1.0, 1.0, 0.0),
        lambda: theory.condition_b_envelope(2.0, 2.0, 0.0, 0.0, 0.25, 4.0),
    ],
)
def test_a_zero_height_envelope_is_allowed_and_vanishes(make):
    assert make()(LAMBDAS).tolist() == [0.0] * 5


def test_zero_envelope_bound_is_f_k_of_eta0():
    # U ≡ 0: Φ = f_K(η0) exactly (no integral term); with U ≡ ζ the closed form above
    bound = theory.envelope_loss_bound(theory.condition_a_envelope(0.0, 1.0, 1.0, 0.0), 0.5, 1.5, 3)
    assert bound == pytest.approx(math.log(1 + 2 * math.exp(-1.5)), rel=1e-15)


@pytest.mark.parametrize("outside", [[-1.0, -0.25], [2.0, 3.5], [-1.0, 0.0, 2.0, 7.0]])
def test_breakpoints_outside_the_window_are_ignored(outside):
    eta, eta0, zeta = 0.5, 1.5, 0.25  # D = 2

    def constant(lam):
        return torch.full_like(lam, zeta)

    plain = theory.envelope_loss_bound(constant, eta, eta0, 3, partition_size=16)
    extra = theory.envelope_loss_bound(
        constant, eta, eta0, 3, partition_size=16, breakpoints=torch.tensor(outside, dtype=torch.float64)
    )
    assert extra == plain
    assert plain == pytest.approx(phi_trivial_closed_form(zeta, eta, eta0, 3), rel=1e-12)


def test_breakpoints_inside_the_window_refine_a_step_envelope_to_its_exact_value():
    eta, eta0 = 0.5, 1.5  # D = 2; U = 0 on [0, 0.3], 0.25 beyond: 0.3 is not a point of the uniform grid

    def step(lam):
        return torch.where(lam > 0.3, 0.25, 0.0).to(torch.float64)

    exact = theory.envelope_loss_bound(
        step, eta, eta0, 3, partition_size=4, breakpoints=torch.tensor([0.3], dtype=torch.float64)
    )
    f = lambda d: math.log(1 + 2 * math.exp(-d))  # f_K, K = 3
    assert exact == pytest.approx(f(eta0) + 0.25 * (f(0.3 - eta) - f(2.0 - eta)), rel=1e-14)
    coarse = theory.envelope_loss_bound(step, eta, eta0, 3, partition_size=4)
    assert coarse > exact  # without the breakpoint the piece [0, 0.5] is charged U(0.5) = 0.25


@pytest.mark.parametrize(
    "call",
    [
        lambda: theory.theorem_a_floor(torch.tensor([0.5, 1.0]), 3, 1.0, -1.0, 1.0),
        lambda: theory.theorem_b_floor(torch.tensor([0.5, 1.0]), 3, 1.0, -1.0),
        lambda: theory.theorem_a_floor(torch.tensor([0.5, 1.0]), 3, 0.25, -0.5, 1.0),
        lambda: theory.envelope_loss_bound(torch.zeros_like, 1.0, -1.0, 3),
        lambda: theory.envelope_loss_bound(torch.zeros_like, 0.25, -0.5, 3),
    ],
)
def test_an_empty_window_is_refused(call):
    with pytest.raises(ValueError, match=r"need −eta < eta0"):
        call()


def test_the_bad_set_check_names_the_minimum():
    with pytest.raises(ValueError, match=r"the bad set B_eta is not empty: min margin -2 < −eta = -1"):
        theory.theorem_a_floor(torch.tensor([-2.0, 1.0]), 3, 1.0, 1.0, 1.0)


def test_envelope_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"`envelope` must map a 1-D tensor of λ values to a tensor of the same"):
        theory.envelope_loss_bound(lambda lam: lam[:-1], 1.0, 1.0, 3)


def test_infinite_condition_a_constant_gives_zeta_on_positive_lambda_and_zero_at_zero():
    # C = inf (the bad set is not empty): U_A = ζ on λ > 0, and U_A(0) = 0 (never inf · 0 = nan)
    envelope = theory.condition_a_envelope(math.inf, 1.0, 1.0, 0.5)
    assert envelope(LAMBDAS).tolist() == [0.0, 0.5, 0.5, 0.5, 0.5]
    finite = theory.condition_a_envelope(2.0, 0.5, 1.0, 0.5)
    assert finite(torch.tensor([0.0, 1 / 64], dtype=torch.float64)).tolist() == [0.0, 0.25]  # 2 · (1/64)^{1/2}


def test_one_piece_is_allowed():
    eta, eta0, zeta = 0.5, 1.5, 0.25
    bound = theory.envelope_loss_bound(lambda lam: torch.full_like(lam, zeta), eta, eta0, 3, partition_size=1)
    assert bound == pytest.approx(phi_trivial_closed_form(zeta, eta, eta0, 3), rel=1e-14)


@pytest.mark.parametrize("pieces", [1, 2, 3, 5])
def test_upper_sum_on_the_uniform_partition_of_a_rising_envelope(pieces):
    # U(λ) = λ/4 on [0, D], D = 2: the §4 upper sum Σ U(a_{i+1}) (f_K(a_i − η) − f_K(a_{i+1} − η)) on a_i = D i/M,
    # recomputed with 50-digit f_K; a different number of pieces (or a moved last point) changes it
    eta, eta0 = 0.5, 1.5
    bound = theory.envelope_loss_bound(lambda lam: lam / 4, eta, eta0, 3, partition_size=pieces)
    points = [Fraction(2 * i, pieces) for i in range(pieces + 1)]
    expected = fK_mp(mp.mpf(eta0), 3)
    for left, right in zip(points[:-1], points[1:]):
        expected += (
            mp.mpf(right.numerator)
            / right.denominator
            / 4
            * (
                fK_mp(mp.mpf(left.numerator) / left.denominator - eta, 3)
                - fK_mp(mp.mpf(right.numerator) / right.denominator - eta, 3)
            )
        )
    assert bound == pytest.approx(float(expected), rel=1e-14)
