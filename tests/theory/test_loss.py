"""Theorem 0's floor where ``g(η)`` underflows (issue 16, see TESTING.md).

``loss_floor(L, η) = clip(1 − L / g(η), 0, 1)``; for ``η ≳ 745`` the float64 value of ``g(η) = log(1 + e^{−η})``
is 0, and the documented answer is the limit: floor 1 when ``L = 0`` (nothing is lost), 0 when ``L > 0``.
The mutation run found the ``L = 0`` branch untested.
"""

from __future__ import annotations

import math

import pytest
import torch

from lightning_stability import theory


@pytest.mark.parametrize("eta", [800.0, 1e6, 1e300])
def test_loss_floor_where_g_underflows(eta):
    assert math.log1p(math.exp(-eta)) == 0.0  # the case: g(η) is 0 in float64
    assert theory.loss_floor(0.0, eta) == 1.0
    assert theory.loss_floor(1e-300, eta) == 0.0
    assert theory.loss_floor(5.0, eta) == 0.0


def test_loss_floor_just_below_the_underflow():
    eta = 700.0  # g(700) = e^{-700} ≈ 9.86e-305 > 0
    g = math.exp(-eta)
    assert theory.loss_floor(0.0, eta) == 1.0
    assert theory.loss_floor(g / 4, eta) == pytest.approx(0.75, rel=1e-12)
    assert theory.loss_floor(g, eta) == pytest.approx(0.0, abs=1e-12)


def test_loss_floor_is_clipped_to_the_unit_interval():
    assert theory.loss_floor(0.0) == 1.0
    assert theory.loss_floor(math.log(2.0) / 2) == pytest.approx(0.5, rel=1e-15)
    assert theory.loss_floor(10.0) == 0.0
    assert theory.loss_floor(0.0, eta=-50.0) == 1.0
    assert theory.loss_floor(1.0, eta=-50.0) == pytest.approx(1 - 1 / 50, rel=1e-12)  # g(−50) ≈ 50


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64])
def test_margin_losses_are_float64_for_any_input_dtype(dtype):
    margins = torch.tensor([0, 2, -3]).to(dtype)
    g = theory.binary_margin_loss(margins)
    f = theory.multiclass_margin_loss(margins, 3)
    assert g.dtype == torch.float64 and f.dtype == torch.float64
    expected_g = [math.log(2.0), math.log1p(math.exp(-2.0)), 3.0 + math.log1p(math.exp(-3.0))]
    expected_f = [math.log(3.0), math.log1p(2 * math.exp(-2.0)), math.log1p(2 * math.exp(3.0))]
    assert g.tolist() == pytest.approx(expected_g, rel=1e-15)
    assert f.tolist() == pytest.approx(expected_f, rel=1e-15)
