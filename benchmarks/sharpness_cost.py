"""What a SharpnessMonitor check costs against a training step (docs/dynamics.md D1, "Cost").

    python benchmarks/sharpness_cost.py [--repeats 5] [--threads 1] [--warmup 100]

The digits tanh MLP of ``examples/edge_of_stability.py`` (64-64-64-10, square loss) on n = 1,000 samples, full
batch, SGD with momentum 0.9 at η = 0.4, first trained ``--warmup`` steps so that it is near its edge of stability.
Then, ``--repeats`` times: one training step (forward, backward, ``optimizer.step()``), timed, followed by one check
of each method at the weights it left, in an order rotated per repetition (interleaved):

* ``power`` — power iteration (the old default), from a seeded Gaussian vector;
* ``lanczos, cold`` — Lanczos with the residual rule (k = 2 for the gap, as the monitor), seeded Gaussian start;
* ``lanczos, warm`` — the same started from the previous check's top Ritz vector (`warm_start`; the monitor's
  default), the previous check being this method's at the step before.

A check is what the monitor computes: the Hessian-vector product operator on the whole subset (one chunk, its
gradient graph kept), the optimizer's preconditioner and `estimate_sharpness` (tol 1e-3, max_iter 100; one SGD
group, so the edge ratio costs no products of its own) — not Lightning's logging. Times are CPU time
(``time.process_time``) of this process. Prints a Markdown table (median and min–max over the repetitions);
nothing here is asserted in the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from edge_of_stability import TanhMLP, digits, momentum, square_loss

from lightning_stability.dynamics import HessianVectorProduct, estimate_sharpness, read_preconditioner

N = 1000
METHODS = ("power", "lanczos, cold", "lanczos, warm")


def check(model: TanhMLP, optimizer: torch.optim.Optimizer, batch: tuple[Tensor, Tensor], method: str, previous):
    """One check as the monitor runs it; ``(estimates, seconds of CPU time)``."""
    start = time.process_time()
    params = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    operator = HessianVectorProduct(params, [lambda: square_loss(model, batch)])
    estimates = estimate_sharpness(
        operator,
        operator.dim,
        method="power" if method == "power" else "lanczos",
        k=1 if method == "power" else 2,
        tol=1e-3,
        max_iter=100,
        seed=0,
        device="cpu",
        preconditioner=read_preconditioner([optimizer], params),
        previous=previous if method == "lanczos, warm" else None,
    )
    model.train()
    return estimates, time.process_time() - start


def step(model: TanhMLP, optimizer: torch.optim.Optimizer, batch: tuple[Tensor, Tensor]) -> float:
    """One full-batch training step; seconds of CPU time."""
    start = time.process_time()
    optimizer.zero_grad()
    square_loss(model, batch).backward()
    optimizer.step()
    return time.process_time() - start


def spread(values: list[float], form: Callable[[float], str]) -> str:
    return f"{form(statistics.median(values))} ({form(min(values))}–{form(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = digits(N)
    batch = (data.tensors[0], data.tensors[1])
    model = TanhMLP(momentum(0.4))
    optimizer = model.configure_optimizers()
    for _ in range(args.warmup):
        step(model, optimizer, batch)
    previous, _ = check(model, optimizer, batch, "lanczos, warm", None)  # the check before the first timed one
    warm = previous.top[0].vector
    steps: list[float] = []
    seconds: dict[str, list[float]] = {name: [] for name in METHODS}
    products: dict[str, list[float]] = {name: [] for name in METHODS}
    values: dict[str, list[float]] = {name: [] for name in METHODS}
    for repeat in range(args.repeats):
        steps.append(step(model, optimizer, batch))
        for name in METHODS[repeat % 3 :] + METHODS[: repeat % 3]:
            estimates, cost = check(model, optimizer, batch, name, warm)
            seconds[name].append(cost)
            products[name].append(estimates.products)
            values[name].append(estimates.top[0].value)
            if name == "lanczos, warm":
                warm = estimates.top[0].vector
    print(
        f"| method (n = {N}, full batch, {args.repeats} interleaved repetitions, {args.threads} thread(s), CPU time) "
        "| check [s] | training step [s] | check / step | products per check | λ_max |"
    )
    print("|---|---|---|---|---|---|")
    for name in METHODS:
        ratios = [c / s for c, s in zip(seconds[name], steps, strict=True)]
        print(
            f"| {name} | {spread(seconds[name], lambda x: f'{x:.3f}')} | {spread(steps, lambda x: f'{x:.4f}')} "
            f"| {spread(ratios, lambda x: f'{x:.0f}')} | {spread(products[name], lambda x: f'{x:.0f}')} "
            f"| {spread(values[name], lambda x: f'{x:.3f}')} |"
        )


if __name__ == "__main__":
    main()
