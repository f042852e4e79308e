"""λ_max by power iteration / Lanczos with Hessian-vector products, against explicit matrices and Hessians."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_stability.dynamics import (
    HessianVectorProduct,
    lanczos_top_eigenvalue,
    power_iteration,
    top_hessian_eigenvalue,
)

from ..helpers import explicit_hessian


def symmetric(eigenvalues: list[float], seed: int = 0) -> torch.Tensor:
    """``Q diag(λ) Qᵀ`` with a random orthogonal ``Q``."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=generator, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


BULK = [0.01 * i for i in range(40)]
SPECTRA = {
    "positive dominant": [5.0, 1.0, -0.2, *BULK],
    "negative dominant": [-10.0, 3.0, 1.0, *BULK],
    "plus and minus the same": [5.0, -5.0, 1.0, *BULK],
    "all negative": [-3.0, -1.0, -0.5, *[-0.6 - 0.01 * i for i in range(40)]],
    "repeated top": [2.0, 2.0, -1.0, *BULK],
}


@pytest.mark.parametrize("method", ["power", "lanczos"])
@pytest.mark.parametrize("name", list(SPECTRA))
def test_largest_algebraic_eigenvalue_of_explicit_matrices(name: str, method: str) -> None:
    matrix = symmetric(SPECTRA[name])
    expected = float(torch.linalg.eigvalsh(matrix)[-1])
    result = top_hessian_eigenvalue(lambda v: matrix @ v, matrix.shape[0], method=method, tol=1e-8, max_iter=3000)
    assert result.converged
    assert result.value == pytest.approx(expected, rel=1e-4), (name, method)
    # an eigenvector of that eigenvalue
    residual = torch.linalg.vector_norm(matrix @ result.vector - result.value * result.vector)
    assert residual <= 1e-2 * abs(expected)


def test_power_iteration_shifts_only_when_the_dominant_eigenvalue_is_not_the_largest() -> None:
    for name, shifted in [("positive dominant", False), ("negative dominant", True), ("plus and minus the same", True)]:
        matrix = symmetric(SPECTRA[name])
        result = top_hessian_eigenvalue(lambda v, m=matrix: m @ v, matrix.shape[0], tol=1e-8, max_iter=3000)
        assert (result.shift != 0) is shifted, name
    # without the shift, the plain power iteration finds the dominant (most negative) eigenvalue
    matrix = symmetric(SPECTRA["negative dominant"])
    plain = power_iteration(lambda v: matrix @ v, torch.ones(matrix.shape[0], dtype=torch.float64), tol=1e-10)
    assert plain.value == pytest.approx(-10.0, rel=1e-6)


def test_the_iteration_cap_is_reported() -> None:
    matrix = symmetric([1.0, 0.999, 0.998, *BULK])  # tiny gaps: far from converged after 3 products
    start = torch.ones(matrix.shape[0], dtype=torch.float64)
    result = power_iteration(lambda v: matrix @ v, start, tol=1e-12, max_iter=3)
    assert not result.converged and result.products == 3
    result = lanczos_top_eigenvalue(lambda v: matrix @ v, start, tol=1e-12, max_iter=3)
    assert not result.converged and result.products == 3


def tiny_problem(seed: int = 0, activation: type[nn.Module] = nn.Tanh):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), activation(), nn.Linear(6, 3))
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    return model, x, y


@pytest.mark.parametrize("chunks", [1, 3])
def test_hessian_vector_products_equal_the_explicit_hessian_times_v(chunks: int) -> None:
    model, x, y = tiny_problem()
    hessian = explicit_hessian(model, x, y).to(torch.float64)
    pieces = torch.arange(50).chunk(chunks)
    closures = [lambda idx=idx: nn.functional.cross_entropy(model(x[idx]), y[idx]) for idx in pieces]
    operator = HessianVectorProduct(list(model.parameters()), closures, [len(idx) / 50 for idx in pieces])
    for seed in range(3):
        v = torch.randn(operator.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        torch.testing.assert_close(operator(v), hessian @ v, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("activation", [nn.Tanh, nn.ReLU])
@pytest.mark.parametrize("method", ["power", "lanczos"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_model_top_eigenvalue_within_one_percent_of_the_explicit_hessian(seed, method, activation) -> None:
    model, x, y = tiny_problem(seed, activation)
    expected = float(torch.linalg.eigvalsh(explicit_hessian(model, x, y).to(torch.float64))[-1])
    closure = lambda: nn.functional.cross_entropy(model(x), y)
    operator = HessianVectorProduct(list(model.parameters()), [closure])
    result = top_hessian_eigenvalue(operator, operator.dim, method=method)  # default tol and cap
    assert result.value == pytest.approx(expected, rel=0.01)
    assert result.products == operator.products


def test_products_leave_every_grad_untouched() -> None:
    model, x, y = tiny_problem()
    sentinels = [torch.full_like(p, 7.0) for p in model.parameters()]
    for p, s in zip(model.parameters(), sentinels):
        p.grad = s.clone()
    model[2].bias.grad = None
    operator = HessianVectorProduct(list(model.parameters()), [lambda: nn.functional.cross_entropy(model(x), y)])
    top_hessian_eigenvalue(operator, operator.dim)
    assert model[2].bias.grad is None
    for p, s in zip(list(model.parameters())[:3], sentinels):
        assert torch.equal(p.grad, s)


def test_unused_parameters_and_a_zero_hessian() -> None:
    unused = nn.Parameter(torch.ones(3))
    weight = nn.Parameter(torch.tensor([1.0, -2.0]))
    # L = 0.5 (w·x)² has H = x xᵀ (λ_max = |x|² = 5); `unused` adds zero rows and columns
    operator = HessianVectorProduct([weight, unused], [lambda: 0.5 * (weight @ torch.tensor([1.0, 2.0])) ** 2])
    assert top_hessian_eigenvalue(operator, operator.dim).value == pytest.approx(5.0, rel=1e-6)
    affine = HessianVectorProduct([weight], [lambda: weight.sum()])
    result = top_hessian_eigenvalue(affine, affine.dim)
    assert result.value == 0.0 and result.converged


def test_bad_inputs_raise_clear_errors() -> None:
    matvec = lambda v: v
    with pytest.raises(ValueError, match="`tol` must be a number in"):
        top_hessian_eigenvalue(matvec, 3, tol=0.0)
    with pytest.raises(ValueError, match="`max_iter` must be an integer >= 2"):
        top_hessian_eigenvalue(matvec, 3, max_iter=1)
    with pytest.raises(ValueError, match="`method` must be 'power' or 'lanczos'"):
        top_hessian_eigenvalue(matvec, 3, method="arnoldi")
    with pytest.raises(ValueError, match="`dim` must be a positive integer"):
        top_hessian_eigenvalue(matvec, 0)
    with pytest.raises(ValueError, match="not finite"):
        top_hessian_eigenvalue(lambda v: v * math.nan, 3)
    weight = nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=r"the loss is nan \(not finite\)"):
        HessianVectorProduct([weight], [lambda: weight.sum() * math.nan])(torch.ones(2))
    with pytest.raises(ValueError, match="requires_grad=True"):
        HessianVectorProduct([torch.ones(2)], [lambda: weight.sum()])
    with pytest.raises(ValueError, match="one each"):
        HessianVectorProduct([weight], [lambda: weight.sum()], [0.5, 0.5])
    with pytest.raises(ValueError, match="flat vector of length 2"):
        HessianVectorProduct([weight], [lambda: (weight**2).sum()])(torch.ones(3))
