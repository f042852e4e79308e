"""The edge ratio ``λ_max(P^-1/2 (H + W) P^-1/2) / T`` of every readable optimizer against an explicit reference:
the Hessian of a small net formed entry by entry (torch.func.hessian), ``P⁻¹`` recomputed from the optimizer's
state by hand, and the threshold checked against the spectral radius of the optimizer's own linear iteration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lightning_stability.dynamics import (
    HessianVectorProduct,
    UnreadableOptimizer,
    edge_verdict,
    estimate_sharpness,
    lanczos_top_eigenvalues,
    read_preconditioner,
)


def small_problem(seed: int = 0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 2, (20,))
    return net, x, y


def loss_of(net, x, y):
    return nn.functional.cross_entropy(net(x), y)


def explicit_hessian(net, x, y) -> torch.Tensor:
    """H formed entry by entry: row i is the gradient of the i-th gradient component (autograd, one per row)."""
    params = list(net.parameters())
    gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss_of(net, x, y), params, create_graph=True)])
    rows = [torch.autograd.grad(gradient[i], params, retain_graph=True) for i in range(gradient.numel())]
    return torch.stack([torch.cat([r.reshape(-1) for r in row]) for row in rows]).detach()


def train(net, x, y, optimizer, steps: int = 5) -> None:
    for _ in range(steps):
        optimizer.zero_grad()
        loss_of(net, x, y).backward()
        optimizer.step()


def hand_inverse(optimizer) -> tuple[torch.Tensor, float, float]:
    """P⁻¹ (flat), T and the coupled decay, written out again from the formulas of docs/dynamics.md D1."""
    group = optimizer.param_groups[0]
    parts = []
    lr = group["lr"]
    if isinstance(optimizer, torch.optim.Adam):
        b1, b2 = group["betas"]
        threshold = (2 + 2 * b1) / (1 - b1)
        for p in group["params"]:
            s = optimizer.state[p]
            t = float(s["step"])
            v = s["max_exp_avg_sq"] if group["amsgrad"] else s["exp_avg_sq"]
            parts.append((lr / ((1 - b1**t) * ((v / (1 - b2**t)).sqrt() + group["eps"]))).reshape(-1))
        decay = 0.0 if isinstance(optimizer, torch.optim.AdamW) else group["weight_decay"]
    elif isinstance(optimizer, torch.optim.RMSprop):
        threshold = 2 + 2 * group["momentum"]
        for p in group["params"]:
            v = optimizer.state[p]["square_avg"]
            if group["centered"]:
                v = v - optimizer.state[p]["grad_avg"] ** 2
            parts.append((lr / (v.sqrt() + group["eps"])).reshape(-1))
        decay = group["weight_decay"]
    else:
        beta, tau = group["momentum"], group["dampening"]
        threshold = 2.0 if beta == 0 else (2 + 2 * beta) / (1 - tau)
        if group["nesterov"]:
            threshold /= 1 + 2 * beta
        parts = [torch.full((p.numel(),), lr, dtype=torch.float64) for p in group["params"]]
        decay = group["weight_decay"]
    return torch.cat(parts).double(), threshold, decay


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.3),
    "sgd_decay": lambda p: torch.optim.SGD(p, lr=0.3, weight_decay=0.05),
    "heavy_ball": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "heavy_ball_dampened": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.8, dampening=0.3),
    "nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    "amsgrad": lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.01),
    "rmsprop_centered_momentum": lambda p: torch.optim.RMSprop(p, lr=0.01, centered=True, momentum=0.5),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_edge_ratio_equals_the_explicit_preconditioned_hessian(name: str) -> None:
    net, x, y = small_problem()
    optimizer = OPTIMIZERS[name](net.parameters())
    train(net, x, y, optimizer)
    params = list(net.parameters())
    inverse, threshold, decay = hand_inverse(optimizer)
    plain = explicit_hessian(net, x, y)
    h = plain + decay * torch.eye(inverse.numel(), dtype=torch.float64)
    root = inverse.sqrt()
    expected = float(torch.linalg.eigvalsh(root[:, None] * h * root[None, :])[-1]) / threshold

    operator = HessianVectorProduct(params, [lambda: loss_of(net, x, y)])
    preconditioner = read_preconditioner([optimizer], params)
    estimates = estimate_sharpness(
        operator,
        operator.dim,
        method="lanczos",
        k=2,
        tol=1e-8,
        max_iter=200,
        seed=0,
        device="cpu",
        preconditioner=preconditioner,
    )
    assert estimates.edge_ratio == pytest.approx(expected, rel=1e-3)
    assert estimates.top[0].value == pytest.approx(float(torch.linalg.eigvalsh(plain)[-1]), rel=1e-3)


def spectral_radius(optimizer_factory, curvature: float) -> float:
    """The growth factor per step of the optimizer on ``½ c θ²`` (one parameter), read from its own iterates."""
    theta = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = optimizer_factory([theta])
    norms = []
    for _ in range(400):
        optimizer.zero_grad()
        (0.5 * curvature * theta**2).sum().backward()
        optimizer.step()
        norms.append(float(theta.detach().abs()) + 1e-300)
    return (norms[-1] / norms[-101]) ** (1 / 100)


@pytest.mark.parametrize("name", ["sgd", "heavy_ball", "heavy_ball_dampened", "nesterov"])
def test_the_threshold_is_where_the_optimizer_itself_starts_to_diverge(name: str) -> None:
    """On ``½ c θ²`` the SGD family is linear; its iterates grow exactly when ``η c > T``: the ratio's 1 is real."""
    factory = OPTIMIZERS[name]
    probe = factory([nn.Parameter(torch.zeros(1, dtype=torch.float64))])
    inverse, threshold, _ = hand_inverse(probe)
    edge = threshold / float(inverse[0])
    assert spectral_radius(factory, 0.97 * edge) < 1 < spectral_radius(factory, 1.03 * edge)


def test_an_unknown_optimizer_is_refused_by_name() -> None:
    net, _, _ = small_problem()
    with pytest.raises(UnreadableOptimizer, match="Adagrad"):
        read_preconditioner([torch.optim.Adagrad(net.parameters())], list(net.parameters()))


def test_lanczos_resolves_clustered_top_eigenvalues_and_their_gap() -> None:
    """λ2/λ1 = 0.995: the residual rule gets λ_max to 1e-6 where the change between iterates would stop early."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((300, 300)))
    values = np.concatenate([[10.0, 9.95], rng.uniform(-2, 8, 298)])
    matrix = torch.tensor(q @ np.diag(values) @ q.T)
    start = torch.randn(300, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    top = lanczos_top_eigenvalues(lambda v: matrix @ v, start, k=2, tol=1e-6, max_iter=300)
    assert top[0].value == pytest.approx(10.0, rel=1e-6) and top[1].value == pytest.approx(9.95, rel=1e-6)
    assert top[0].converged and top[0].products < 120


@pytest.mark.parametrize(
    ("ratio", "loss", "previous", "event"),
    [
        (1.0, 0.5, 0.6, False),  # at the edge, loss falling: normal training
        (1.15, 0.7, 0.6, False),  # near the edge, loss rising: an edge-of-stability spike, not clearly above
        (3.0, 0.5, 0.6, False),  # far above, but the loss still falls
        (3.0, 0.7, 0.6, True),  # far above and the loss rises
        (3.0, 0.6, 0.6, True),  # far above and the loss stalls
        (3.0, 0.7, None, True),  # a first check: the ratio alone
        (math.nan, 0.7, 0.6, True),
    ],
)
def test_the_verdict_needs_a_ratio_clearly_above_the_edge_and_a_loss_that_does_not_fall(
    ratio, loss, previous, event
) -> None:
    assert edge_verdict(ratio, loss, previous, above=1.2) is event
