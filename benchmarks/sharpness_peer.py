"""Our λ_max (SharpnessMonitor's estimate) against a peer library on the example model, value and time.

Model: ``lightning_stability.example.AbsMLP`` (784 → 256 → 256 → 10, |x| activations, seed 0) after
``--train-epochs`` epochs of SGD (lr 0.1, batch 64) on the 4,500 embedded MNIST training digits; loss: the mean
cross entropy over a fixed 512-sample subset (the monitor's seeded choice). Estimates, each timed from scratch
(gradient graph included), median of ``--repeats``:

* ours: :func:`lightning_stability.dynamics.top_hessian_eigenvalue` (power iteration, tol 1e-3, the monitor's
  defaults) and the same with ``method="lanczos"``;
* the peer: PyHessian's ``hessian(...).eigenvalues()`` (power iteration, tol 1e-3), or hessian-eigenthings'
  ``power_iteration_one`` on its ``HessianOperator`` if PyHessian does not work;
* a reference: our Lanczos run to tol 1e-9.

Run by hand: ``python benchmarks/sharpness_peer.py [--peer auto|pyhessian|hessian-eigenthings]``. The peers are
not dependencies of the package: ``pip install pyhessian hessian-eigenthings -c constraints.txt``. Exits with
status 1 and says so when no peer imports and runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from lightning_stability.callbacks.training_data import fixed_subset
from lightning_stability.dynamics import HessianVectorProduct, top_hessian_eigenvalue
from lightning_stability.example import AbsMLP, MNISTDataModule

TOL, MAX_ITER = 1e-3, 100


def trained_model(images: torch.Tensor, labels: torch.Tensor, epochs: int) -> nn.Module:
    torch.manual_seed(0)
    model = AbsMLP(hidden_dims=(256, 256))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def ours(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, tol: float, max_iter: int) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    operator = HessianVectorProduct(params, [lambda: nn.functional.cross_entropy(model(x), y)])
    return top_hessian_eigenvalue(operator, operator.dim, method=method, tol=tol, max_iter=max_iter).value


def pyhessian_estimate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    from pyhessian import hessian

    torch.manual_seed(0)  # PyHessian draws its start vector from the global RNG
    computer = hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    values, _ = computer.eigenvalues(maxIter=MAX_ITER, tol=TOL, top_n=1)
    model.zero_grad(set_to_none=True)  # it leaves graph-carrying .grad behind
    return float(values[0])


def eigenthings_estimate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    import hessian_eigenthings as he

    operator = he.HessianOperator(model, [(x, y)], he.supervised_loss(nn.functional.cross_entropy))
    value, *_ = he.power_iteration_one(operator, max_iter=MAX_ITER, tol=TOL, seed=0)
    return float(value)


PEERS: dict[str, tuple[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]]] = {
    "pyhessian": ("PyHessian", pyhessian_estimate),
    "hessian-eigenthings": ("hessian-eigenthings", eigenthings_estimate),
}


def timed(estimates: dict[str, Callable[[], float]], repeats: int) -> dict[str, tuple[float, float]]:
    """``{label: (value of the last run, median seconds)}``; one untimed warm-up each, then the estimates take
    turns in every round so that background load hits them alike."""
    seconds: dict[str, list[float]] = {label: [] for label in estimates}
    values = {label: estimate() for label, estimate in estimates.items()}
    for _ in range(repeats):
        for label, estimate in estimates.items():
            start = time.perf_counter()
            values[label] = estimate()
            seconds[label].append(time.perf_counter() - start)
    return {label: (values[label], statistics.median(seconds[label])) for label in estimates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=["auto", *PEERS], default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--train-epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = MNISTDataModule()
    data.setup("fit")
    images, labels = data.train_set.tensors
    model = trained_model(images, labels, args.train_epochs)
    subset = fixed_subset(len(labels), args.samples, seed=0)
    x, y = images[subset], labels[subset]
    print(f"torch {torch.__version__}; AbsMLP 784-256-256-10 after {args.train_epochs} SGD epoch(s), {len(y)} samples")

    peer_name, peer_fn, failures = None, None, []
    for key in PEERS if args.peer == "auto" else [args.peer]:
        name, function = PEERS[key]
        try:
            function(model, x, y)
        except Exception as error:  # an import error or an incompatibility with this torch
            failures.append(f"{name}: {type(error).__name__}: {error}")
            continue
        peer_name, peer_fn = name, function
        break
    for failure in failures:
        print(f"peer unavailable — {failure}")
    if peer_fn is None:
        print("NO PEER WORKS: neither PyHessian nor hessian-eigenthings imports and runs here; nothing to compare.")
        return 1

    reference = ours(model, x, y, "lanczos", 1e-9, 300)
    estimates = {
        "ours, power iteration": lambda: ours(model, x, y, "power", TOL, MAX_ITER),
        "ours, Lanczos": lambda: ours(model, x, y, "lanczos", TOL, MAX_ITER),
        f"{peer_name}, power iteration": lambda: peer_fn(model, x, y),
    }
    results = timed(estimates, args.repeats)
    print(f"reference λ_max (our Lanczos, tol 1e-9): {reference:.6f}")
    print(f"{'estimate':<38}{'λ_max':>12}{'rel. to ref.':>15}{'median s':>11}")
    for label, (value, seconds) in results.items():
        print(f"{label:<38}{value:>12.6f}{(value - reference) / abs(reference):>15.2e}{seconds:>11.4f}")
    ours_value, ours_time = results["ours, power iteration"]
    peer_value, peer_time = results[f"{peer_name}, power iteration"]
    print(f"relative difference ours (power) vs {peer_name}: {(ours_value - peer_value) / abs(peer_value):.3e}")
    print(f"time ratio ours (power) / {peer_name}: {ours_time / peer_time:.3f} (median of {args.repeats})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
