"""`certify`'s grid (docs/theory.md §7, `CertificateGrid`) checked by hand (issue 16, see TESTING.md).

The mutation run found that nothing pinned the grid `certify` searches: the scale ``s`` (median − min, else
the range, else 1), the ``η0`` quantiles when ``F`` hits a level exactly, and the Condition B settings of
Theorem B (window ``w = η0``, centre spacing ``fraction × h``). With one value per grid the search has a
single candidate, so the reported parameters are fixed by the documentation and computed here by hand.

Margins: the dyadic grid ``−1 + k/16`` (k = 0..63) plus a pair of samples at 10 and 10.0625, an isolated
cluster *above* the window ``η0 = 1`` (with the window it is invisible; without it ``κ = 1``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from lightning_stability import theory
from tests.theory.exact_oracles import as_float, exact_condition_a, lattice_kappa_b

MARGINS = torch.tensor([-1 + k / 16 for k in range(64)] + [10.0, 10.0625], dtype=torch.float64)
ONE_CANDIDATE = dict(zetas=(0.5,), tau_fractions=(0.25,), gammas=(1.0,), partition_size=64, search_partition_size=64)


def test_single_candidate_parameters_by_hand():
    report = theory.certify(MARGINS, 3, **ONE_CANDIDATE)
    # median: smallest v with F(v) >= 1/2 = 33/66 -> v = -1 + 32/16 = 1 (F hits 1/2 exactly there);
    # s = 1 − (−1) = 2, τ = s/4 = 0.5, η = τ − min δ = 1.5; η0 = the 1/2-quantile = 1, ζ = F(1) = 1/2
    for floor in (report.theorem_a, report.theorem_b):
        assert (floor.eta, floor.eta0, floor.zeta) == (1.5, 1.0, 0.5)
    assert report.theorem_a.gamma == 1.0 and report.theorem_a.lam0 == 2.5  # λ0 = D = η + η0
    b = report.theorem_b
    assert b.min_width == 0.25  # h = (1/8)(η0 − min δ)
    assert b.min_cluster_mass == 0.025  # m_min = 0.05 ζ
    assert (b.max_mass, b.dilation) == (0.5, 2.0)


def test_theorem_b_bracket_uses_the_window_and_the_centre_grid():
    b = theory.certify(MARGINS, 3, **ONE_CANDIDATE).theorem_b
    documented = theory.condition_b_constant(
        MARGINS,
        2.0,
        max_mass=0.5,
        min_width=0.25,
        min_cluster_mass=0.025,
        window_end=1.0,
        radius_ratio=1.05,
        centre_spacing=0.25 / 8,
    )
    assert (b.kappa_lower, b.kappa_upper) == (documented.lower, documented.upper)
    exact, _ = lattice_kappa_b(MARGINS, 2.0, Fraction(1, 2), 0.25, 0.025, window_end=1.0)
    assert exact == 4 / 3
    assert b.kappa_lower <= exact <= b.kappa_upper
    assert b.kappa_lower > 1.0  # the pair above the window does not count
    # the same bracket without a window finds the pair (κ = 1), exact centres give another lower end:
    # both settings matter on these margins
    assert theory.condition_b_constant(MARGINS, 2.0, 0.5, 0.25, min_cluster_mass=0.025).upper == 1.0
    exact_centres = theory.condition_b_constant(
        MARGINS, 2.0, 0.5, 0.25, min_cluster_mass=0.025, window_end=1.0, radius_ratio=1.05
    )
    assert exact_centres.lower != b.kappa_lower


def test_exact_centres_when_the_fraction_is_none():
    b = theory.certify(MARGINS, 3, centre_spacing_fraction=None, **ONE_CANDIDATE).theorem_b
    documented = theory.condition_b_constant(
        MARGINS, 2.0, max_mass=0.5, min_width=0.25, min_cluster_mass=0.025, window_end=1.0, radius_ratio=1.05
    )
    assert (b.kappa_lower, b.kappa_upper) == (documented.lower, documented.upper)


@pytest.mark.parametrize(
    "margins,eta,eta0,zeta",
    [
        # median = min = 0: s = range = 4, τ = 1, η = 1; the 1/2-quantile is 0 = min δ, so η0 = min δ + s = 4
        ([0.0, 0.0, 0.0, 4.0], 1.0, 4.0, 1.0),
        # all equal: s = 1, τ = 1/4, η = 1/4 − 2; η0 = 2 + 1 = 3, ζ = F(3) = 1
        ([2.0, 2.0, 2.0], -1.75, 3.0, 1.0),
        # median 1 (F(1) = 1/2 exactly), s = 1 − (−1) = 2, τ = 1/2, η = 3/2; η0 = 1
        ([-1.0, 1.0, 2.0, 3.0], 1.5, 1.0, 0.5),
    ],
)
def test_scale_fallbacks(margins, eta, eta0, zeta):
    report = theory.certify(torch.tensor(margins, dtype=torch.float64), 3, **ONE_CANDIDATE)
    assert (report.theorem_a.eta, report.theorem_a.eta0, report.theorem_a.zeta) == (eta, eta0, zeta)
    assert (report.theorem_b.eta, report.theorem_b.eta0, report.theorem_b.zeta) == (eta, eta0, zeta)


def test_quantile_value_takes_the_value_where_f_reaches_the_level_exactly():
    sorted_margins = theory.SortedMargins(torch.tensor([3.0, 0.0, 2.0, 1.0], dtype=torch.float64))
    assert sorted_margins.quantile_value(0.5) == 1.0  # F(1) = 1/2
    assert sorted_margins.quantile_value(0.25) == 0.0
    assert sorted_margins.quantile_value(0.5000001) == 2.0
    assert sorted_margins.quantile_value(1.0) == 3.0
    weighted = theory.SortedMargins(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 2.0]))
    assert weighted.quantile_value(0.5) == 1.0  # F(1) = 2/4


def test_unknown_grid_parameter_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown certify grid parameter\(s\) \['gama'\]; valid ones are: zetas, "):
        theory.certify(MARGINS, 3, gama=(1.0,))


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_cluster_mass_fractions_may_be_zero_or_one(fraction):
    grid = theory.CertificateGrid(cluster_mass_fractions=(fraction,))
    assert grid.cluster_mass_fractions == (fraction,)
    b = theory.certify(MARGINS, 3, cluster_mass_fractions=(fraction,), **ONE_CANDIDATE).theorem_b
    assert b.min_cluster_mass == fraction * 0.5


def test_grid_values_are_stored_as_float_tuples():
    grid = theory.CertificateGrid(zetas=[1, 0.5], gammas=(2,))
    assert grid.zetas == (1.0, 0.5) and grid.gammas == (2.0,)
    assert all(type(value) is float for value in grid.zetas + grid.gammas)


def test_given_loss_sets_the_theorem_0_floor():
    report = theory.certify(MARGINS, 3, loss=0.5, **ONE_CANDIDATE)
    assert report.loss == 0.5 and report.loss_floor == 1 - 0.5 / math.log(2.0)
    assert report.margin_loss_floor == max(0.0, 1 - report.loss_upper / math.log(2.0))
    zero = theory.certify(MARGINS, 3, loss=0.0, **ONE_CANDIDATE)
    assert zero.loss_floor == 1.0


@pytest.mark.parametrize("gamma", [0.3, 1.7])
def test_condition_a_constant_uses_the_exact_float64_gamma(gamma):
    # γ = 0.3 is not a float32 number: a γ rounded to float32 (0.30000001192…) changes C_A in the 8th digit
    report = theory.certify(MARGINS, 3, **{**ONE_CANDIDATE, "gammas": (gamma,)})
    a = report.theorem_a
    assert a.gamma == gamma
    exact = exact_condition_a(MARGINS, a.eta, gamma, a.lam0)
    assert a.condition_a_constant == pytest.approx(as_float(exact), rel=1e-14)


def test_theorem_b_bracket_uses_the_cluster_mass_and_the_radius_ratio_of_the_grid():
    # an isolated sample at −3 (mass 1/67 < m_min = 0.05 ζ) must be ignored, as the grid's m_min says
    margins = torch.cat([torch.tensor([-3.0], dtype=torch.float64), MARGINS])
    for ratio in (1.05, 1.5):
        b = theory.certify(margins, 3, radius_ratio=ratio, **ONE_CANDIDATE).theorem_b
        assert (b.eta0, b.zeta, b.min_width) == (1.0, 34 / 67, 0.5)  # h = (1 − (−3))/8
        assert b.min_cluster_mass == 0.05 * (34 / 67)
        documented = theory.condition_b_constant(
            margins,
            2.0,
            max_mass=b.zeta,
            min_width=0.5,
            min_cluster_mass=b.min_cluster_mass,
            window_end=1.0,
            radius_ratio=ratio,
            centre_spacing=0.5 / 8,
        )
        assert (b.kappa_lower, b.kappa_upper) == (documented.lower, documented.upper)
        assert b.kappa_upper > 1.0  # with m_min = 0 the isolated sample would give κ_hi = 1
    coarse = theory.certify(margins, 3, radius_ratio=1.5, **ONE_CANDIDATE).theorem_b
    fine = theory.certify(margins, 3, **ONE_CANDIDATE).theorem_b
    assert (coarse.kappa_lower, coarse.kappa_upper) != (fine.kappa_lower, fine.kappa_upper)


def test_grid_boundary_values_are_accepted():
    grid = theory.CertificateGrid(centre_spacing_fraction=1.0, partition_size=1, search_partition_size=1)
    assert (grid.centre_spacing_fraction, grid.partition_size, grid.search_partition_size) == (1.0, 1, 1)
    report = theory.certify(
        MARGINS,
        3,
        zetas=(0.5,),
        tau_fractions=(0.25,),
        gammas=(1.0,),
        centre_spacing_fraction=1.0,
        partition_size=1,
        search_partition_size=1,
    )
    assert 0.0 <= report.theorem_a.floor <= 1.0 and 0.0 <= report.theorem_b.floor <= 1.0


def test_mass_etas_are_compared_in_float64():
    # float32(0.7) < 0.7: a float32 threshold would count the margin 0.7 as above it
    margins = torch.tensor([0.7, -0.7, 0.1, 2.0], dtype=torch.float64)
    report = theory.certify(margins, 3, mass_etas=(0.7, 0.1), **ONE_CANDIDATE)
    assert report.good_masses == (0.25, 0.5)  # δ > 0.7: only 2; δ > 0.1: 0.7 and 2
    assert report.bad_masses == (0.0, 0.25)  # δ < −0.7: none; δ < −0.1: −0.7
