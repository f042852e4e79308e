"""tr(H) by Hutchinson and Hutch++, and λ_max of each parameter group's Hessian block, against explicit Hessians."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_stability.dynamics import (
    HessianVectorProduct,
    estimate_sharpness,
    group_positions,
    group_top_eigenvalues,
    hutch_plus_plus_trace,
    hutchinson_trace,
    trace_estimate,
)

from ..helpers import explicit_hessian
from .test_sharpness import symmetric, tiny_problem


def tiny_operator(seed: int = 0):
    """The tiny net's Hessian-vector products and its explicit Hessian (float64)."""
    model, x, y = tiny_problem(seed)
    hessian = explicit_hessian(model, x, y).to(torch.float64)
    operator = HessianVectorProduct(list(model.parameters()), [lambda: nn.functional.cross_entropy(model(x), y)])
    return model, operator, hessian


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_the_trace_of_a_tiny_net_is_within_a_few_standard_errors(method: str) -> None:
    _, operator, hessian = tiny_operator()
    expected = float(torch.trace(hessian))
    estimate = trace_estimate(operator, operator.dim, 60, method=method, seed=0)
    assert estimate.products == 60 == operator.products
    assert 0 < estimate.stderr < 0.2 * abs(expected)  # informative, and not exact: the Hessian is not diagonal
    assert abs(estimate.value - expected) <= 4 * estimate.stderr


def rms(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values))


def test_hutchinson_stderr_matches_the_spread_over_seeds_and_the_exact_variance() -> None:
    _, _, hessian = tiny_operator()
    m, seeds = 20, 400
    runs = [hutchinson_trace(lambda v: hessian @ v, hessian.shape[0], m, seed=s) for s in range(seeds)]
    values = torch.tensor([r.value for r in runs], dtype=torch.float64)
    spread = float(values.std())
    # Var[zᵀHz] = 2 Σ_{i≠j} H_ij² for Rademacher z
    exact = math.sqrt(2 * float((hessian**2).sum() - (hessian.diagonal() ** 2).sum()) / m)
    assert spread == pytest.approx(exact, rel=0.12)
    assert rms([r.stderr for r in runs]) == pytest.approx(spread, rel=0.12)
    assert float(values.mean()) == pytest.approx(float(torch.trace(hessian)), abs=4 * spread / math.sqrt(seeds))


def test_hutch_plus_plus_stderr_matches_the_spread_over_seeds() -> None:
    matrix = symmetric([10.0, 6.0, 3.0, *[0.05 * i - 0.5 for i in range(40)]], seed=1)
    runs = [hutch_plus_plus_trace(lambda v: matrix @ v, 43, 24, seed=s) for s in range(400)]
    values = torch.tensor([r.value for r in runs], dtype=torch.float64)
    # given the sketch the estimate is unbiased, so the spread is the root mean square of the conditional errors
    assert rms([r.stderr for r in runs]) == pytest.approx(float(values.std()), rel=0.15)
    assert float(values.mean()) == pytest.approx(float(torch.trace(matrix)), abs=4 * float(values.std()) / 20)
    # ... and smaller than Hutchinson's with the same 24 products on a matrix with a few dominant eigenvalues
    plain = [hutchinson_trace(lambda v: matrix @ v, 43, 24, seed=s).value for s in range(400)]
    assert float(values.std()) < 0.8 * float(torch.tensor(plain).std())


def test_exact_cases() -> None:
    diagonal = torch.tensor([3.0, -1.0, 0.5, 7.0, 0.0], dtype=torch.float64)
    estimate = hutchinson_trace(lambda v: diagonal * v, 5, 3, seed=4)
    assert estimate.value == pytest.approx(9.5, abs=1e-12) and estimate.stderr == 0.0
    assert estimate.samples == pytest.approx((9.5, 9.5, 9.5), abs=1e-12)
    # Hutch++ with rank(H) <= k sketch columns: the sketch holds all of H, the remainder is 0
    low = symmetric([4.0, -2.0, *[0.0] * 20], seed=2)
    estimate = hutch_plus_plus_trace(lambda v: low @ v, 22, 8, seed=0)  # k = 2
    assert estimate.value == pytest.approx(2.0, abs=1e-10) and estimate.stderr == pytest.approx(0.0, abs=1e-10)


def test_trace_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="integer >= 2"):
        hutchinson_trace(lambda v: v, 3, 1)
    with pytest.raises(ValueError, match="integer >= 4"):
        hutch_plus_plus_trace(lambda v: v, 3, 3)
    with pytest.raises(ValueError, match="'hutchinson' or 'hutch\\+\\+'"):
        trace_estimate(lambda v: v, 3, 5, method="exact")
    with pytest.raises(ValueError, match="not finite"):
        hutchinson_trace(lambda v: v * math.nan, 3, 2)


def test_group_blocks_against_the_explicit_hessian() -> None:
    model, operator, hessian = tiny_operator(seed=1)
    first, act, second = model
    frozen = nn.Parameter(torch.ones(2))  # in a group, but not among the operator's parameters
    # groups out of the flat order: the second layer first, then the first layer's bias with its weight
    optimizer = torch.optim.SGD(
        [{"params": [second.weight, second.bias]}, {"params": [first.bias, first.weight]}, {"params": [frozen]}],
        lr=0.1,
    )
    positions = group_positions([optimizer], operator.params)
    assert positions[2] is None
    layer_one = torch.arange(0, 30)  # weight 24 then bias 6 in the flat order
    assert sorted(positions[1].tolist()) == layer_one.tolist()
    assert positions[1][:6].tolist() == list(range(24, 30))  # the bias listed first in its group
    estimates = group_top_eigenvalues(operator, operator.dim, positions, tol=1e-8, max_iter=200, seed=0)
    assert estimates[2] is None
    for block, index in ((estimates[0], torch.arange(30, 51)), (estimates[1], layer_one)):
        expected = float(torch.linalg.eigvalsh(hessian[index][:, index])[-1])
        assert block is not None and block.converged
        assert block.value == pytest.approx(expected, rel=1e-6)
    # interlacing: no block is sharper than the whole
    assert max(e.value for e in estimates if e is not None) <= float(torch.linalg.eigvalsh(hessian)[-1]) + 1e-9
    with pytest.raises(ValueError, match="no `param_groups` list"):
        group_positions([object()], operator.params)


def test_estimate_sharpness_counts_every_product() -> None:
    model, operator, hessian = tiny_operator()
    optimizer = torch.optim.SGD([{"params": list(model[0].parameters())}, {"params": list(model[2].parameters())}])
    estimates = estimate_sharpness(
        operator,
        operator.dim,
        method="lanczos",
        k=2,
        tol=1e-6,
        max_iter=100,
        seed=0,
        device="cpu",
        preconditioner=None,
        trace_products=10,
        groups=group_positions([optimizer], operator.params),
    )
    assert estimates.trace is not None and estimates.trace.products == 10
    assert len(estimates.groups) == 2 and estimates.converged
    assert (
        estimates.products
        == operator.products
        == estimates.top[0].products + 10 + sum(g.products for g in estimates.groups if g is not None)
    )
    assert estimates.top[0].value == pytest.approx(float(torch.linalg.eigvalsh(hessian)[-1]), rel=1e-5)
