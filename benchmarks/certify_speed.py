"""Speed of ``theory.certify`` (issue: certify on 10^6 margins, K = 10, in under 2 s; growth ≤ ~N log N).

Run by hand: ``python benchmarks/certify_speed.py [--repeats 5]``. Prints the median and min–max wall time for
N = 10^5 and 10^6 margins of a realistic trained-classifier shape (accuracy ≈ 0.996), the time ratio, the
measured growth exponent ``log(t_1e6 / t_1e5) / log 10`` and the N log N reference ratio (≈ 12.0).
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import torch

from lightning_stability import theory


def synthetic_margins(num_samples: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_samples, generator=generator, dtype=torch.float64) * 3.0 + 8.0


def time_certify(num_samples: int, repeats: int) -> list[float]:
    margins = synthetic_margins(num_samples)
    theory.certify(margins, 10)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        theory.certify(margins, 10)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads 2")
    medians = {}
    for num_samples in (10**5, 10**6):
        times = time_certify(num_samples, args.repeats)
        medians[num_samples] = statistics.median(times)
        print(
            f"certify N={num_samples:>8}: median {medians[num_samples]:.3f} s (min {min(times):.3f}, max {max(times):.3f})"
        )
    ratio = medians[10**6] / medians[10**5]
    print(
        f"time ratio 1e6/1e5: {ratio:.2f} (N log N reference: {10 * math.log(1e6) / math.log(1e5):.1f}); "
        f"growth exponent {math.log(ratio) / math.log(10):.2f}"
    )
    print(f"goal certify(1e6) < 2 s: {'met' if medians[10**6] < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
