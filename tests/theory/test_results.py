"""Tests of ``lightning_stability/theory/results.py``: the report types."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lightning_stability import theory

# =====================================================================================================================
# From test_results.py — The flat ``to_dict`` views of the reports and ``loss_rose`` (issue 16, see TESTING.md).
#
# The mutation run found the key names of `StabilityReport.to_dict` and every line of
# `DataClusterReport.to_dict` and `loss_rose` untested by the theory tests (loggers and callbacks read these
# keys, so a renamed key silently drops a metric). Expected values here are written out by hand.
# =====================================================================================================================


D = torch.tensor([-0.5, 0.25, 1.0, 3.0], dtype=torch.float64)


def small_report():
    return theory.certify(
        D,
        3,
        zetas=(0.5,),
        tau_fractions=(0.25,),
        gammas=(1.0,),
        mass_etas=(0.0, 1.0),
        partition_size=64,
        search_partition_size=64,
    )


def test_stability_report_to_dict_has_exactly_the_documented_keys_and_values():
    report = small_report()
    out = report.to_dict()
    a_fields = [f.name for f in dataclasses.fields(theory.TheoremAFloor)]
    b_fields = [f.name for f in dataclasses.fields(theory.TheoremBFloor)]
    expected_keys = (
        {"num_samples", "accuracy", "loss_lower", "loss_upper", "loss_floor", "margin_loss_floor", "margin_min"}
        | {"good_mass/eta_0", "bad_mass/eta_0", "good_mass/eta_1", "bad_mass/eta_1"}
        | {f"theorem_a/{name}" for name in a_fields}
        | {f"theorem_b/{name}" for name in b_fields}
    )
    assert set(out) == expected_keys  # no "loss": it was not given
    assert out["num_samples"] == 4.0 and isinstance(out["num_samples"], float)
    # by hand: three of the four margins are > 0; only 3.0 is > 1; only -0.5 is < 0; none is < -1
    assert out["accuracy"] == 0.75
    assert out["margin_min"] == -0.5
    assert out["good_mass/eta_0"] == 0.75 and out["bad_mass/eta_0"] == 0.25
    assert out["good_mass/eta_1"] == 0.25 and out["bad_mass/eta_1"] == 0.0
    assert (out["loss_lower"], out["loss_upper"]) == (report.loss_lower, report.loss_upper)
    assert out["loss_floor"] == report.loss_floor and out["margin_loss_floor"] == report.margin_loss_floor
    for name in a_fields:
        assert out[f"theorem_a/{name}"] == float(getattr(report.theorem_a, name))
    for name in b_fields:
        assert out[f"theorem_b/{name}"] == float(getattr(report.theorem_b, name))


def test_stability_report_to_dict_includes_a_given_loss():
    report = theory.certify(
        D,
        3,
        loss=0.5,
        zetas=(0.5,),
        tau_fractions=(0.25,),
        gammas=(1.0,),
        partition_size=64,
        search_partition_size=64,
    )
    out = report.to_dict()
    assert out["loss"] == 0.5
    assert out["loss_floor"] == 1.0 - 0.5 / math.log(2.0)


def test_stability_report_to_dict_refuses_mass_grids_of_different_lengths():
    report = dataclasses.replace(small_report(), good_masses=(0.75,))  # two etas, one good mass
    with pytest.raises(ValueError):
        report.to_dict()
    report = dataclasses.replace(small_report(), bad_masses=(0.25, 0.0, 0.0))
    with pytest.raises(ValueError):
        report.to_dict()


def _cluster_report(witness, indices, directions, constant_upper):
    return theory.DataClusterReport(
        constant_lower=0.5,
        constant_upper=constant_upper,
        worst_direction=directions[0],
        worst_direction_kind="extra",
        witness=witness,
        witness_indices=indices,
        directions=directions,
        kinds=("extra",) * directions.shape[0],
        lower=torch.full((directions.shape[0],), 0.5, dtype=torch.float64),
        upper=torch.full((directions.shape[0],), constant_upper, dtype=torch.float64),
        resolutions=torch.full((directions.shape[0],), 0.1, dtype=torch.float64),
        max_mass=0.05,
        min_cluster_mass=0.01,
        dilation=2.0,
        num_samples=100,
    )


def test_data_cluster_report_to_dict_with_a_witness():
    directions = torch.eye(3, 5, dtype=torch.float64)  # 3 directions in dimension 5
    report = _cluster_report((1.5, 0.25), torch.tensor([4, 7]), directions, constant_upper=1.0)
    assert report.to_dict() == {
        "constant_lower": 0.5,
        "constant_upper": 1.0,
        "violated": 1.0,
        "witness_centre": 1.5,
        "witness_radius": 0.25,
        "witness_size": 2.0,
        "num_directions": 3.0,
        "max_mass": 0.05,
        "min_cluster_mass": 0.01,
    }


def test_data_cluster_report_to_dict_without_a_witness():
    directions = torch.eye(2, 4, dtype=torch.float64)
    report = _cluster_report(None, torch.zeros(0, dtype=torch.long), directions, constant_upper=1.5)
    out = report.to_dict()
    assert math.isnan(out.pop("witness_centre")) and math.isnan(out.pop("witness_radius"))
    assert out == {
        "constant_lower": 0.5,
        "constant_upper": 1.5,
        "violated": 0.0,
        "witness_size": 0.0,
        "num_directions": 2.0,
        "max_mass": 0.05,
        "min_cluster_mass": 0.01,
    }
    assert all(isinstance(value, float) for value in report.to_dict().values())


def test_data_cluster_report_violated_threshold():
    directions = torch.eye(1, 2, dtype=torch.float64)
    none = torch.zeros(0, dtype=torch.long)
    assert _cluster_report(None, none, directions, constant_upper=1.0 + 1e-12).violated
    assert not _cluster_report(None, none, directions, constant_upper=1.0 + 1e-9).violated


def test_data_clusters_to_dict_end_to_end():
    # 40 points spread on [0, 1] plus a tight pair far away: the pair is an isolated cluster on the x-axis
    spread = torch.stack([torch.linspace(0.0, 1.0, 40), torch.zeros(40)], dim=1)
    points = torch.cat([spread, torch.tensor([[5.0, 0.0], [5.01, 0.0]])]).double()
    report = theory.data_clusters(
        points,
        n_random=0,
        n_principal=0,
        extra_directions=torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        max_mass=0.1,
        min_cluster_mass=0.04,
    )
    out = report.to_dict()
    assert out["num_directions"] == 3.0  # three directions of dimension 2
    assert out["violated"] == 1.0 and report.violated
    assert out["witness_size"] == float(report.witness_indices.numel()) and report.witness_indices.tolist() == [40, 41]
    assert (out["witness_centre"], out["witness_radius"]) == report.witness


@pytest.mark.parametrize(
    "previous,current,rose",
    [(1.0, 1.5, True), (1.0, 1.0, False), (1.0, 0.5, False), (0.0, 1e-300, True), (-1.0, -2.0, False)],
)
def test_loss_rose(previous, current, rose):
    assert theory.loss_rose(previous, current) is rose


def test_loss_rose_accepts_numbers_of_any_real_type():
    assert theory.loss_rose(1, torch.tensor(2.0)) is True
    assert theory.loss_rose(torch.tensor(2.0, dtype=torch.float64), 1) is False
    with pytest.raises(ValueError, match="`loss` must be a real number"):
        theory.loss_rose(1.0, "x")
    with pytest.raises(ValueError, match="`previous_loss` must be finite"):
        theory.loss_rose(math.inf, 1.0)
