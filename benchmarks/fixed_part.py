"""The fixed part of a check inside a fit, in bare inference passes: one benchmark for `event_cost.py --part fixed`
and `run_all.py --sections fit` alike (issue 31).

    python benchmarks/fixed_part.py [--repeats 5] [--size 20000] [--epochs 3] [--threads 1]
    python benchmarks/fixed_part.py --profile      # where a fit with the monitor spends the time it gains

Interleaved rounds (after one warm-up of each) of: a bare ``model(x)`` pass over the monitor's own loader (batch
512), a fit of the example's AbsMLP on ``size`` tiled digits without the monitor, the same fit with a
StabilityMonitor checking before training and after every epoch (``epochs + 1`` checks), the two fits in alternating
order; both fits with a TensorBoard and a CSV logger, SGD batch 128, CPU
time of this process (robust to other load on the machine). Per round:

* gained / (checks × bare) = (fit with − fit without) / (checks × bare pass): what a check adds, in bare passes;
* hooks / (checks × bare): the CPU time inside the monitor's own hooks, per check;
* outside the hooks: the rest of the gain — what the fit spends because of the monitor outside its hooks.

`--profile` runs one fit without and one with the monitor under cProfile (CPU time) and prints the functions
whose cumulative time grew most. Nothing here is asserted in the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

HOOKS = ("setup", "on_fit_start", "on_train_start", "on_train_epoch_start", "on_train_epoch_end", "on_train_end")


def timed_monitor() -> Any:
    """A StabilityMonitor that sums the CPU time spent inside its hooks (``hook_seconds``)."""
    from lightning_stability import StabilityMonitor

    class Timed(StabilityMonitor):
        hook_seconds = 0.0

    for hook in HOOKS:
        original = getattr(StabilityMonitor, hook)

        def timed(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return _original(self, *args, **kwargs)
            finally:
                self.hook_seconds += time.process_time() - start

        setattr(Timed, hook, timed)
    return Timed()


def fit(dataset: Any, epochs: int, monitor: Any | None) -> float:
    """CPU seconds of one fit (TensorBoard + CSV loggers), with ``monitor`` or without one."""
    import pytorch_lightning as pl

    from lightning_stability.example import AbsMLP

    pl.seed_everything(0, verbose=False)
    with tempfile.TemporaryDirectory() as directory:
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            logger=[pl.loggers.TensorBoardLogger(directory, name="tb"), pl.loggers.CSVLogger(directory, name="csv")],
            callbacks=[] if monitor is None else [monitor],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
        )
        start = time.process_time()
        trainer.fit(AbsMLP(), DataLoader(dataset, batch_size=128, shuffle=True))
        return time.process_time() - start


def bare_pass(dataset: Any) -> float:
    """CPU seconds of ``model(x)`` over the monitor's own loader (batch 512, the default for training batch 128)."""
    from lightning_stability.callbacks.margin_loader import margin_dataloader
    from lightning_stability.example import AbsMLP

    model = AbsMLP().eval()
    start = time.process_time()
    with torch.inference_mode():
        for _, (x, _) in margin_dataloader(dataset, 512):
            model(x)
    return time.process_time() - start


def measure(repeats: int, size: int = 20_000, epochs: int = 3) -> list[str]:
    """The Markdown table of the fixed part (see the module doc)."""
    from check_cost import tiled_digits

    dataset = tiled_digits(size)
    bare_pass(dataset)  # warm-up: the first pass, Trainer and monitor of a process pay one-off costs
    fit(dataset, 1, None)
    fit(dataset, 1, timed_monitor())
    rows: dict[str, list[float]] = {"ratio": [], "gained": [], "hooks": [], "outside": [], "bare": []}
    for round_ in range(repeats):
        bare = bare_pass(dataset)
        monitor = timed_monitor()
        if round_ % 2:  # alternate the order, so that a drift within a round cancels over the rounds
            with_, without = fit(dataset, epochs, monitor), fit(dataset, epochs, None)
        else:
            without, with_ = fit(dataset, epochs, None), fit(dataset, epochs, monitor)
        checks = monitor.checks_done
        rows["bare"].append(bare)
        rows["ratio"].append(with_ / without)
        rows["gained"].append((with_ - without) / (checks * bare))
        rows["hooks"].append(monitor.hook_seconds / (checks * bare))
        rows["outside"].append((with_ - without - monitor.hook_seconds) / (checks * bare))

    def summary(values: list[float], digits: int = 2) -> str:
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"

    return [
        f"| fit of N = {size:,}, {epochs} epochs, {epochs + 1} checks, TensorBoard + CSV ({repeats} rounds, CPU time) "
        "| median (min–max) | goal |",
        "|---|---|---|",
        f"| bare pass [s] | {summary(rows['bare'], 3)} | |",
        f"| fit with the monitor / without | {summary(rows['ratio'])} | |",
        f"| time gained per check / bare pass | {summary(rows['gained'])} | ≤ 1.25 |",
        f"| of it inside the monitor's hooks | {summary(rows['hooks'])} | |",
        f"| of it outside the hooks | {summary(rows['outside'])} | |",
    ]


def profile(size: int, epochs: int, top: int = 30) -> list[str]:
    """The functions whose cumulative CPU time grew most from a fit without the monitor to one with it."""
    from check_cost import tiled_digits

    from lightning_stability import StabilityMonitor

    dataset = tiled_digits(size)
    fit(dataset, 1, None)  # warm-up
    tables = []
    for monitor in (None, StabilityMonitor()):
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        fit(dataset, epochs, monitor)
        profiler.disable()
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        tables.append({f"{key[0].split('site-packages/')[-1]}:{key[2]}": value[3] for key, value in stats.items()})
    without, with_ = tables
    grown = sorted(((with_.get(k, 0.0) - without.get(k, 0.0), k) for k in set(without) | set(with_)), reverse=True)
    return [f"{seconds:8.3f} s  {name}" for seconds, name in grown[:top]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # Lightning's Trainer resets the threads unless this is set
    lines = profile(args.size, args.epochs) if args.profile else measure(args.repeats, args.size, args.epochs)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
