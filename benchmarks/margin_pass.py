"""Cost of the StabilityMonitor's check on the example MLP at N = 60,000 (the size of full MNIST).

Goals (issue 3): margin pass ≤ 1.10 × a bare ``model(x)`` inference pass over the same loader; the theory step
(``theory.certify``) ≤ 10 % of the margin pass. Memory: the pass keeps four O(N) vectors, never N × K logits.

Run by hand: ``python benchmarks/margin_pass.py [--repeats 5] [--samples 60000]``. The inputs are the 5,000
embedded MNIST digits tiled to N samples (full MNIST cannot be downloaded here; the cost does not depend on
the pixel values).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import TensorDataset

from lightning_stability import theory
from lightning_stability.callbacks.forward_output import default_forward
from lightning_stability.callbacks.margin_loader import margin_dataloader
from lightning_stability.callbacks.margin_pass import MarginCollector, run_margin_pass
from lightning_stability.example import AbsMLP, MNISTDataModule


def bare_pass(model: torch.nn.Module, loader) -> None:
    model.eval()
    with torch.inference_mode():
        for _, (inputs, _targets) in loader:
            model(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = MNISTDataModule()
    data.setup("fit")
    images, labels = data.train_set.tensors
    repeats = -(-args.samples // len(labels))
    dataset = TensorDataset(images.repeat(repeats, 1, 1, 1)[: args.samples], labels.repeat(repeats)[: args.samples])
    model = AbsMLP(hidden_dims=(256, 256))
    loader = margin_dataloader(dataset, args.batch_size)

    bare, margin, certify = [], [], []
    for _ in range(args.repeats + 1):  # the first round warms up and is dropped
        start = time.perf_counter()
        bare_pass(model, loader)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = run_margin_pass(model, loader, default_forward, MarginCollector())
        margin.append(time.perf_counter() - start)
        loss = float(result.losses.mean())
        start = time.perf_counter()
        theory.certify(result.margins, result.num_classes, loss=loss)
        certify.append(time.perf_counter() - start)
    bare, margin, certify = bare[1:], margin[1:], certify[1:]
    ratios = [m / b for m, b in zip(margin, bare, strict=True)]
    shares = [c / m for c, m in zip(certify, margin, strict=True)]

    def show(name: str, values: list[float], unit: str = "s") -> None:
        print(
            f"{name:<34} median {statistics.median(values):.3f} {unit} (min {min(values):.3f}, max {max(values):.3f})"
        )

    print(f"N = {args.samples}, batch {args.batch_size}, AbsMLP 784-256-256-10, torch {torch.__version__}, 2 threads")
    show("bare model(x) pass", bare)
    show("margin pass", margin)
    show("theory.certify", certify)
    show("margin pass / bare pass (ratio)", ratios, "")
    show("certify / margin pass (ratio)", shares, "")
    print(f"goal margin pass ≤ 1.10 × bare: {'met' if statistics.median(ratios) <= 1.10 else 'NOT met'}")
    print(f"goal certify ≤ 10 % of margin pass: {'met' if statistics.median(shares) <= 0.10 else 'NOT met'}")


if __name__ == "__main__":
    main()
