"""`assess_exact` and `assess_subset` log exactly what the one `assess_check` before them logged: every metric's
name, value and order, the count, the comparison and the blame sets, on passes with and without weights, a
previous check, an event and changed samples (the old values: tests/assess/assess_check_values.py)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch

from lightning_stability.assess import (
    CheckResult,
    CheckSettings,
    PreviousCheck,
    assess_exact,
    assess_subset,
)
from lightning_stability.records import MarginPass
from tests.assess import assess_check_values as old

GRID: dict[str, Any] = dict(
    zetas=(0.1, 0.3), tau_fractions=(1 / 16,), gammas=(1.0, 2.0), width_fractions=(1 / 8,), partition_size=512
)
SETTINGS = CheckSettings(tol=0.0, grid=GRID, quantiles=(0.05, 0.5), confidence=0.9, blame_size=3)
NONE = torch.zeros(0, dtype=torch.long)


def random_pass(n: int, seed: int, shift: float) -> MarginPass:
    generator = torch.Generator().manual_seed(seed)
    margins = torch.randn(n, generator=generator, dtype=torch.float64) + shift
    return MarginPass(
        indices=torch.arange(n) * 2,
        targets=torch.randint(0, 3, (n,), generator=generator),
        margins=margins,
        losses=torch.nn.functional.softplus(-margins),
        predicted=torch.zeros(n, dtype=torch.long),
        num_classes=3,
    )


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_as_before(result: CheckResult, expected: dict[str, Any]) -> None:
    got = list(result.metrics.items())
    assert [name for name, _ in got] == [name for name, _ in expected["metrics"]]  # names, in order
    assert all(same(value, before) for (_, value), (_, before) in zip(got, expected["metrics"], strict=True))
    assert result.loss == expected["loss"] and result.instability_count == expected["instability_count"]
    comparison = dataclasses.asdict(result.comparison)
    assert comparison.keys() == expected["comparison"].keys()
    assert all(same(comparison[key], value) for key, value in expected["comparison"].items())
    blame = getattr(result, "blame", None)
    assert expected["blame"] == (None if blame is None else {k: v.tolist() for k, v in vars(blame).items()})


@pytest.fixture(scope="module")
def exact_passes() -> tuple[MarginPass, MarginPass]:
    return random_pass(120, 0, 3.0), random_pass(120, 1, 0.8)


def test_an_exact_check_without_weights_nor_previous(exact_passes: tuple[MarginPass, MarginPass]) -> None:
    first, _ = exact_passes
    result = assess_exact(
        first, None, SETTINGS, epoch=-1, previous=None, instability_count=0, checks_done=0, forgotten=NONE
    )
    assert_as_before(result, old.EXACT_FIRST)


def test_a_weighted_exact_check_after_one_with_flip_masses_and_blame(
    exact_passes: tuple[MarginPass, MarginPass],
) -> None:
    first, second = exact_passes
    previous = PreviousCheck.of_pass(first, old.EXACT_FIRST["loss"], old.EXACT_FIRST["metrics"][0][1])
    weights = torch.linspace(0.5, 2.0, 120, dtype=torch.float64)
    result = assess_exact(
        second,
        weights,
        SETTINGS,
        epoch=3,
        previous=previous,
        instability_count=1,
        checks_done=2,
        forgotten=torch.tensor([4, 8]),
        blame=True,
        data_cluster=torch.tensor([6, 2]),
    )
    assert_as_before(result, old.EXACT_WEIGHTED_AFTER)


def test_an_exact_event_and_changed_samples(exact_passes: tuple[MarginPass, MarginPass]) -> None:
    _, second = exact_passes
    event = PreviousCheck(10.0, 1.0, second.indices, second.margins + 5)
    result = assess_exact(
        second,
        None,
        SETTINGS,
        epoch=5,
        previous=event,
        instability_count=2,
        checks_done=6,
        forgotten=torch.tensor([4, 8]),
    )
    assert_as_before(result, old.EXACT_EVENT)
    moved = PreviousCheck(0.1, 0.5, second.indices + 1, second.margins)
    result = assess_exact(
        second, None, SETTINGS, epoch=6, previous=moved, instability_count=0, checks_done=1, forgotten=NONE
    )
    assert_as_before(result, old.EXACT_SAMPLES_CHANGED)


def test_subset_checks_first_and_at_an_event() -> None:
    drawn = random_pass(50, 2, 1.8)
    counts = torch.randint(1, 4, (50,), generator=torch.Generator().manual_seed(1))
    result = assess_subset(drawn, counts, SETTINGS, epoch=0, previous=None, instability_count=0)
    assert_as_before(result, old.SUBSET_FIRST)
    result = assess_subset(drawn, counts, SETTINGS, epoch=2, previous=PreviousCheck(10.0, 1.0), instability_count=1)
    assert_as_before(result, old.SUBSET_EVENT)
