"""`theorem_b_floor`'s documented defaults and pass-through parameters (issue 16, see TESTING.md).

Docstring: "resolution ``h`` (default ``(η0 − min δ)/8``) and cluster mass ``m_min`` (default ``ζ/20``)"; when
``η0 = min δ`` the first default is zero and ``h = D/8`` is used instead. The mutation run found these
defaults, and the pass-through of ``radius_ratio``, unchecked. The margins are the dyadic grid
``−1 + k/16`` (k = 0..63), so ``ζ``, ``h`` and ``D`` are exact; ``κ_B`` comes from the exact lattice oracle.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from lightning_stability import theory
from tests.theory.exact_oracles import lattice_kappa_b

GRID = torch.tensor([-1 + k / 16 for k in range(64)], dtype=torch.float64)


def test_default_resolution_and_cluster_mass():
    floor = theory.theorem_b_floor(GRID, 3, 1.0, 1.0)
    assert floor.zeta == 33 / 64  # -1, ..., 1: 33 of the 64 margins are <= η0 = 1
    assert floor.min_width == 0.25  # (η0 − min δ)/8 = (1 − (−1))/8
    assert Fraction(floor.min_cluster_mass) == Fraction(0.515625 / 20)  # ζ/20, as float64 computes it
    assert floor.min_cluster_mass == pytest.approx(33 / 1280, rel=1e-15)
    assert floor.max_mass == floor.zeta and floor.dilation == 2.0


def test_default_resolution_when_eta0_is_the_smallest_margin():
    # η0 = min δ = −1 makes (η0 − min δ)/8 zero: h = D/8 = (η + η0)/8 = (1.5 − 1)/8
    floor = theory.theorem_b_floor(GRID, 3, 1.5, -1.0)
    assert floor.min_width == 0.0625
    assert floor.zeta == 1 / 64
    floor = theory.theorem_b_floor(GRID, 3, 3.0, -1.0)
    assert floor.min_width == 0.25  # (3 − 1)/8


def test_explicit_resolution_and_cluster_mass_are_used():
    floor = theory.theorem_b_floor(GRID, 3, 1.0, 1.0, min_width=0.5, min_cluster_mass=0.125)
    assert (floor.min_width, floor.min_cluster_mass) == (0.5, 0.125)


@pytest.mark.parametrize("radius_ratio", [1.05, 1.9])
def test_kappa_bracket_uses_the_given_radius_ratio_and_contains_the_exact_kappa(radius_ratio):
    floor = theory.theorem_b_floor(GRID, 3, 1.0, 1.0, radius_ratio=radius_ratio)
    exact, _ = lattice_kappa_b(GRID, 2.0, Fraction(33, 64), floor.min_width, floor.min_cluster_mass, window_end=1.0)
    assert exact == 4 / 3
    assert floor.kappa_lower <= exact <= floor.kappa_upper
    bracket = theory.condition_b_constant(
        GRID,
        2.0,
        max_mass=floor.zeta,
        min_width=floor.min_width,
        min_cluster_mass=floor.min_cluster_mass,
        window_end=1.0,
        radius_ratio=radius_ratio,
    )
    assert (floor.kappa_lower, floor.kappa_upper) == (bracket.lower, bracket.upper)


def test_a_coarser_radius_grid_gives_a_looser_bracket():
    fine = theory.theorem_b_floor(GRID, 3, 1.0, 1.0)
    coarse = theory.theorem_b_floor(GRID, 3, 1.0, 1.0, radius_ratio=1.9)
    assert coarse.kappa_lower < fine.kappa_lower  # 1.0 < 1.2 on this grid
    assert fine.kappa_lower == pytest.approx(1.2, rel=1e-11)
