"""Speed of ``theory.data_clusters`` (issue 5: 60,000 × 784 inputs, 256 directions, under 60 s on 2 cores).

Run by hand: ``python benchmarks/data_check.py [--sizes 10000 30000 60000] [--directions 256]``. Inputs are the
5,000 embedded MNIST digits tiled to N and jittered with small Gaussian noise (full MNIST cannot be downloaded
here; exact duplicates would form isolated clusters of their own). Prints the total time, the time per direction
and the growth exponent of the time in N.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from lightning_stability import theory
from lightning_stability.example import MNISTDataModule


def inputs(num_samples: int) -> torch.Tensor:
    data = MNISTDataModule()
    data.setup("fit")
    images = data.train_set.tensors[0].reshape(-1, 784)
    tiled = images.repeat(-(-num_samples // images.shape[0]), 1)[:num_samples]
    return tiled + 0.05 * torch.randn(tiled.shape, generator=torch.Generator().manual_seed(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 60_000])
    parser.add_argument("--directions", type=int, default=256)
    parser.add_argument("--principal", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)
    timings = {}
    for num_samples in args.sizes:
        data = inputs(num_samples)
        start = time.perf_counter()
        report = theory.data_clusters(data, n_random=args.directions, n_principal=args.principal)
        elapsed = time.perf_counter() - start
        timings[num_samples] = elapsed
        count = report.directions.shape[0]
        print(
            f"N={num_samples:>6} × 784, {count} directions: {elapsed:6.1f} s ({1000 * elapsed / count:.0f} ms per "
            f"direction); κ in [{report.constant_lower:.3f}, {report.constant_upper:.3f}], violated={report.violated}"
        )
    sizes = sorted(timings)
    if len(sizes) > 1:
        exponent = math.log(timings[sizes[-1]] / timings[sizes[0]]) / math.log(sizes[-1] / sizes[0])
        print(f"growth exponent of time in N ({sizes[0]} → {sizes[-1]}): {exponent:.2f}")
    if 60_000 in timings:
        print(
            f"goal 60,000 × 784 with {args.directions}+{args.principal} directions < 60 s: "
            f"{'met' if timings[60_000] < 60 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
