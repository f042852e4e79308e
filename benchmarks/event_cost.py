"""The whole cost of a check, counted (issue 24): an instability event's check against an ordinary one, and the
summed ``stability_cost/total_seconds`` against the time measured around every hook of the monitor.

    python benchmarks/event_cost.py [--repeats 5] [--threads 1] [--part event|fixed|both]

N = 3,180 inputs of 28×28 (the embedded digits), a linear model whose weights are scripted per epoch (learning
rate 0) so that the checks after epochs 1 and 3 are instability events (some 0s turn wrong while the loss falls)
and the others are not; a TensorBoard and a CSV logger; ``save_margins`` off. Prints a
Markdown table (median and min–max over the repeats); nothing here is asserted in the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

N = 3_180
EPOCHS = 5
EVENT_EPOCHS = (1, 3)
HOOKS = ("setup", "on_fit_start", "on_train_start", "on_train_epoch_start", "on_train_epoch_end", "on_train_end")


def digits() -> TensorDataset:
    """The first N embedded digits, flattened (so the blame grid draws them as 28×28 pictures)."""
    from lightning_stability.example import MNISTDataModule

    data = MNISTDataModule()
    data.setup("fit")
    images, labels = data.train_set.tensors
    return TensorDataset(images[:N].reshape(N, -1), labels[:N])


def scripted_weights(dataset: TensorDataset, epochs: int) -> list[torch.Tensor]:
    """Per epoch the weights of a nearest-class-mean classifier (unit class means) at a falling scale, so the loss
    of this overconfident model falls every epoch; at the event epochs class 0's weights shrink by 15 %, so some 0s
    turn wrong while the loss keeps falling."""
    x, y = dataset.tensors
    means = torch.stack([x[y == k].mean(0) for k in range(10)])
    means = means / means.norm(dim=1, keepdim=True)
    weights = []
    for epoch in range(epochs):
        scale = 12.0 - 2.0 * epoch
        w = means * scale
        if epoch in EVENT_EPOCHS:
            w[0] = w[0] * 0.85
        weights.append(w)
    return weights


def run(repeats: int) -> list[str]:
    import pytorch_lightning as pl

    from lightning_stability import StabilityMonitor

    dataset = digits()
    script = scripted_weights(dataset, EPOCHS)

    class Scripted(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(784, 10, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x)

        def training_step(self, batch: Any, batch_index: int) -> torch.Tensor:
            x, y = batch
            return nn.functional.cross_entropy(self(x), y) * 0.0  # learning nothing: the script sets the weights

        def on_train_epoch_start(self) -> None:
            with torch.no_grad():
                self.linear.weight.copy_(script[self.current_epoch])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.0)

    class Timed(StabilityMonitor):
        """The monitor with a stopwatch around each of its hooks."""

        hook_seconds = 0.0

    for hook in HOOKS:
        original = getattr(StabilityMonitor, hook)

        def timed(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                self.hook_seconds += time.perf_counter() - start

        setattr(Timed, hook, timed)

    class Costs(pl.Callback):
        """After the monitor: each check's cost, and whether it was an event."""

        def __init__(self, monitor: StabilityMonitor) -> None:
            self.monitor, self.rows, self.seen = monitor, [], 0

        def take(self) -> None:
            if self.monitor.checks_done > self.seen:
                self.seen = self.monitor.checks_done
                epoch = self.monitor.last_checked_epoch
                event = epoch in self.monitor.history.epochs
                self.rows.append((epoch, event, dict(self.monitor.last_cost)))

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.take()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.take()

    event, ordinary, ratio, publish_event, publish_ordinary = [], [], [], [], []
    for _ in range(repeats):
        pl.seed_everything(0, verbose=False)
        monitor = Timed(check_at_start=True)
        costs = Costs(monitor)
        with tempfile.TemporaryDirectory() as directory:
            trainer = pl.Trainer(
                max_epochs=EPOCHS,
                accelerator="cpu",
                logger=[
                    pl.loggers.TensorBoardLogger(directory, name="tb"),
                    pl.loggers.CSVLogger(directory, name="csv"),
                ],
                callbacks=[monitor, costs],
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
            trainer.fit(Scripted(), DataLoader(dataset, batch_size=256, shuffle=True))
        events = [c for epoch, is_event, c in costs.rows if is_event]
        others = [c for epoch, is_event, c in costs.rows if not is_event and epoch >= 0]
        assert len(events) == len(EVENT_EPOCHS), [(e, ev) for e, ev, _ in costs.rows]
        event.append(statistics.median(c["stability_cost/total_seconds"] for c in events))
        ordinary.append(statistics.median(c["stability_cost/total_seconds"] for c in others))
        publish_event.append(statistics.median(c["stability_cost/publish_seconds"] for c in events))
        publish_ordinary.append(statistics.median(c["stability_cost/publish_seconds"] for c in others))
        total = sum(c["stability_cost/total_seconds"] for _, _, c in costs.rows)
        ratio.append(total / monitor.hook_seconds)

    def summary(values: list[float], digits: int = 3) -> str:
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"

    extra = [e - o for e, o in zip(event, ordinary, strict=True)]
    return [
        f"| measure (N = {N:,}, 28×28, TensorBoard + CSV, {repeats} runs) | median (min–max) | goal |",
        "|---|---|---|",
        f"| ordinary check, `total_seconds` [s] | {summary(ordinary)} | |",
        f"| event check, `total_seconds` [s] | {summary(event)} | |",
        f"| event − ordinary [s] | {summary(extra)} | ≤ 0.35 |",
        f"| publishing of an ordinary / event check [s] | {summary(publish_ordinary)} / {summary(publish_event)} | |",
        f"| Σ `total_seconds` / time around the monitor's hooks | {summary(ratio)} | within 20 % (0.8–1.2) |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--part", choices=["event", "fixed", "both"], default="both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # Lightning's Trainer resets the threads unless this is set
    if args.part in ("event", "both"):
        print("\n".join(run(args.repeats)))
    if args.part in ("fixed", "both"):
        from fixed_part import measure  # the one benchmark of the fixed part (run_all.py's "fixed" section too)

        print("\n".join(measure(args.repeats)))


if __name__ == "__main__":
    main()
