"""What a check costs as a user pays it (issue 15), measured against a bare inference pass in the same run.

Sections for ``run_all.py`` (each returns the Markdown lines of its RESULTS.md section):

* `check_cost`: on the example AbsMLP at N samples (the 5,000 embedded digits tiled), interleaved rounds of
  (a) a bare ``model(x)`` pass under ``torch.inference_mode()`` over the monitor's own loader, (b) the margin
  pass alone, (c) whole checks inside ``trainer.fit`` — ``StabilityMonitor.run_check`` timed from the outside,
  so pass + ``certify`` + metrics + TensorBoard logging + text summary, as a user pays them — and (d) the same
  for the statistical mode with ``subset_size`` draws. Ratios are formed within each round.
* `fit_overhead`: whole ``trainer.fit`` time with the monitor (every epoch, every 5 epochs, statistical mode) over
  the time without it, interleaved.
* `memory`: bytes per sample of the margin pass's result and the peak RSS rise of a pass at large N (a fresh
  process, a tiny model, so the rise is the pass's own per-sample state).

Run by hand: ``python benchmarks/run_all.py --sections check fit memory [--quick] [--device cuda] [--clock cpu]``.

``--clock cpu`` times with the process's CPU time (all its threads) instead of the wall clock: on a machine
shared with other work, preemption then does not count, so interleaved rounds scatter far less. On one thread
with no loader workers it is the computing time of the same code; on the GPU it would miss the device's work,
so it is refused there.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import TensorDataset

from lightning_stability.callbacks.forward_output import default_forward
from lightning_stability.callbacks.margin_loader import margin_dataloader
from lightning_stability.callbacks.margin_pass import MarginCollector, run_margin_pass

CLOCK: Callable[[], float] = time.perf_counter
"""The clock of `check_cost` and `fit_overhead`: wall time, or the process's CPU time (``--clock cpu``)."""


def use_clock(name: str, device: str) -> str:
    """Select `CLOCK` (``wall`` or ``cpu``) and return how RESULTS.md names it."""
    global CLOCK
    if name == "cpu":
        if device != "cpu":
            raise SystemExit("--clock cpu measures CPU time only; use the wall clock (the default) on a GPU.")
        CLOCK = time.process_time
        return "CPU time of the process (all threads)"
    CLOCK = time.perf_counter
    return "wall time"


def _summary(values: list[float], digits: int = 3) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def tiled_digits(size: int) -> TensorDataset:
    """The embedded digits tiled to ``size`` samples (full MNIST cannot be downloaded here; the cost does not
    depend on pixel values)."""
    from lightning_stability.example import MNISTDataModule

    data = MNISTDataModule()
    data.setup("fit")
    images, labels = data.train_set.tensors
    tiles = -(-size // len(labels))
    return TensorDataset(images.repeat(tiles, 1, 1, 1)[:size], labels.repeat(tiles)[:size])


def bare_inference(model: torch.nn.Module, loader: Any, device: torch.device) -> float:
    """Seconds of ``model(x)`` over ``loader`` in eval mode under ``inference_mode`` (inputs moved to ``device``)."""
    model.eval()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = CLOCK()
    with torch.inference_mode():
        for _, (inputs, _targets) in loader:
            model(inputs.to(device, non_blocking=True))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return CLOCK() - start


def _trainer(callbacks: list, device: str, directory: str, **options: Any):
    import pytorch_lightning as pl

    return pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        callbacks=callbacks,
        logger=pl.loggers.TensorBoardLogger(directory, name="bench"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        **options,
    )


def _timed_checks(
    dataset: TensorDataset, device: str, epochs: int, **monitor_options: Any
) -> tuple[float, list[tuple[float, float]]]:
    """A fit of ``epochs`` epochs of one training batch with a TensorBoard logger: the seconds of the check before
    training (which also logs the run's constants), and for every check after an epoch ``(seconds of
    StabilityMonitor.run_check, the mean of a bare pass over the monitor's own loader just before and just after
    it)`` — paired in time, so that the machine's drift between rounds cancels in their ratio."""
    import pytorch_lightning as pl

    from lightning_stability import StabilityMonitor
    from lightning_stability.example import AbsMLP

    first: list[float] = []
    pairs: list[tuple[float, float]] = []

    class TimedMonitor(StabilityMonitor):
        def run_check(self, trainer, pl_module, epoch, in_epoch_end) -> None:
            loader = self.source.loader(trainer) if epoch >= 0 and self.subset_size is None else None
            before = bare_inference(pl_module, loader, pl_module.device) if loader is not None else 0.0
            pl_module.train()
            start = CLOCK()
            super().run_check(trainer, pl_module, epoch, in_epoch_end)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = CLOCK() - start
            if epoch < 0:
                first.append(seconds)
                return
            after = bare_inference(pl_module, loader, pl_module.device) if loader is not None else 0.0
            pl_module.train()
            pairs.append((seconds, (before + after) / 2))

    pl.seed_everything(0, verbose=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
    with tempfile.TemporaryDirectory() as directory:
        trainer = _trainer(
            [TimedMonitor(**monitor_options)], device, directory, max_epochs=epochs, limit_train_batches=1
        )
        # lr 1e-12 leaves the float32 weights unchanged: no instability event, whose blame grid (a matplotlib
        # figure) would add to that one check
        trainer.fit(AbsMLP(lr=1e-12), loader)
    return first[0], pairs


CHECKS_PER_FIT = 4
"""Epochs (so checks after an epoch) of each fit of `check_cost`."""


def check_cost(repeats: int, quick: bool, device_name: str = "cpu") -> list[str]:
    from lightning_stability.example import AbsMLP

    size, subset = (20_000, 2_000) if quick else (60_000, 5_000)
    device = torch.device(device_name)
    dataset = tiled_digits(size)
    model = AbsMLP().to(device)
    loader = margin_dataloader(dataset, 256)  # the monitor's default batch for the example (4 × 64)
    bare_inference(model, loader, device)  # warm-up
    rows: dict[str, list[float]] = {
        key: [] for key in ("bare", "bare_in_fit", "pass", "check", "beyond_bare", "subset", "first")
    }
    ratios: dict[str, list[float]] = {key: [] for key in ("pass", "check", "subset", "subset_of_check")}
    for _ in range(repeats):
        bare = bare_inference(model, loader, device)
        start = CLOCK()
        move = (lambda batch: batch) if device.type == "cpu" else (lambda batch: [t.to(device) for t in batch])
        run_margin_pass(model, loader, default_forward, MarginCollector().to(device), move_to_device=move)
        margin = CLOCK() - start
        bare_after = bare_inference(model, loader, device)
        first, checks = _timed_checks(dataset, device_name, CHECKS_PER_FIT, check_at_start=True)
        _, subset_checks = _timed_checks(dataset, device_name, CHECKS_PER_FIT, check_at_start=True, subset_size=subset)
        reference = (bare + bare_after) / 2
        check_bare = statistics.median(pair[1] for pair in checks)
        check = statistics.median(pair[0] for pair in checks)
        subset_check = statistics.median(pair[0] for pair in subset_checks)
        rows["first"].append(first)
        rows["bare"].append(reference)
        rows["bare_in_fit"].append(check_bare)
        rows["pass"].append(margin)
        rows["check"].append(check)
        rows["beyond_bare"].append(statistics.median(seconds - paired for seconds, paired in checks))
        rows["subset"].append(subset_check)
        ratios["pass"].append(margin / reference)
        ratios["check"].append(statistics.median(seconds / paired for seconds, paired in checks))
        ratios["subset"].append(subset_check / check_bare)
        ratios["subset_of_check"].append(subset_check / check)
    median = {key: statistics.median(values) for key, values in ratios.items()}
    return [
        f"## Cost of a check on the example (AbsMLP 784-256-256-10, N = {size:,}, {device_name})",
        "",
        f"{repeats} rounds; each round: a bare pass, the margin pass alone and a bare pass (the pass's reference "
        f"is the mean of those two bare passes), then a fit with full checks and a fit with subset checks "
        f"(`subset_size={subset:,}`). A whole check is `StabilityMonitor.run_check` timed from outside inside "
        "`trainer.fit` with a TensorBoard logger: margin pass + `certify` + metrics + logging + summary, as a user "
        f"pays it. Each fit has the check before training (which also logs the run's constants once) and "
        f"{CHECKS_PER_FIT} checks after epochs; every one of those is paired with a bare pass over the monitor's own "
        "loader just before and just after it, in the same hook, so the ratio compares passes made within seconds "
        "of each other; a round's figure is the median over its fit's checks. The weights stay fixed (learning "
        "rate 1e-12), so no check is an instability event: a check at an event also draws the blame grid (from "
        'tensors since issue 24: about 0.05 s more, see "The whole cost of a check"). '
        "Loader batch 256 (the monitor's default for training batches of 64).",
        "",
        "| measure | median (min–max) | goal | |",
        "|---|---|---|---|",
        f"| bare `model(x)` pass [s] | {_summary(rows['bare'])} | | |",
        f"| bare pass beside the checks in the fit [s] | {_summary(rows['bare_in_fit'])} | | |",
        f"| margin pass [s] | {_summary(rows['pass'])} | | |",
        f"| whole check after an epoch [s] | {_summary(rows['check'])} | | |",
        f"| whole check minus its paired bare pass [s] | {_summary(rows['beyond_bare'])} | | |",
        f"| the first check of a fit (before training) [s] | {_summary(rows['first'])} | | |",
        f"| subset check, n = {subset:,} [s] | {_summary(rows['subset'])} | | |",
        f"| margin pass / bare pass | {_summary(ratios['pass'])} | ≤ 1.05 | {_verdict(median['pass'] <= 1.05)} |",
        f"| whole check / bare pass | {_summary(ratios['check'])} | ≤ 1.10 | {_verdict(median['check'] <= 1.10)} |",
        f"| subset check / whole check | {_summary(ratios['subset_of_check'])} | ≤ 0.15 | "
        f"{_verdict(median['subset_of_check'] <= 0.15)} |",
        f"| subset check / bare pass | {_summary(ratios['subset'])} | | |",
        "",
    ]


def fit_overhead(repeats: int, quick: bool, device_name: str = "cpu") -> list[str]:
    import pytorch_lightning as pl

    from lightning_stability import StabilityMonitor
    from lightning_stability.example import AbsMLP

    size, epochs = (20_000, 5) if quick else (60_000, 5)
    dataset = tiled_digits(size)
    setups = {
        "no monitor": lambda: [],
        "check every epoch": lambda: [StabilityMonitor()],
        "check every 5 epochs": lambda: [StabilityMonitor(every_n_epochs=5)],
        "statistical mode (5,000 draws, full every 5)": lambda: [
            StabilityMonitor(subset_size=5_000, full_every_n_epochs=5)
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in setups}
    checks: dict[str, list[float]] = {name: [] for name in setups}
    bare_passes: list[float] = []
    device = torch.device(device_name)
    bare_model = AbsMLP().to(device)
    bare_loader = margin_dataloader(dataset, 512)  # the monitor's default batch for training batches of 128
    bare_inference(bare_model, bare_loader, device)  # warm-up
    for _ in range(repeats):
        bare_passes.append(bare_inference(bare_model, bare_loader, device))
        for name, callbacks in setups.items():
            pl.seed_everything(0, verbose=False)
            loader = torch.utils.data.DataLoader(dataset, batch_size=128, shuffle=True)
            monitors = callbacks()
            with tempfile.TemporaryDirectory() as directory:
                trainer = _trainer(monitors, device_name, directory, max_epochs=epochs)
                start = CLOCK()
                trainer.fit(AbsMLP(), loader)
                times[name].append(CLOCK() - start)
            checks[name].append(float(monitors[0].checks_done) if monitors else 0.0)
    lines = [
        f"## Whole-fit overhead ({epochs} epochs of N = {size:,}, SGD batch 128, {device_name})",
        "",
        f"{repeats} interleaved rounds of the four setups, each round after a bare `model(x)` pass over the "
        "monitor's loader (batch 512); the monitor also checks once before training. Ratio = fit time with the "
        "monitor / without it, within a round. What a check adds in bare passes (the fixed part) is measured by one "
        'benchmark only, `benchmarks/fixed_part.py` (the section "Fixed part of a check inside a fit").',
        "",
        "| setup | checks | fit [s] median (min–max) | ratio to no monitor |",
        "|---|---|---|---|",
    ]
    for name in setups:
        ratio = [t / base for t, base in zip(times[name], times["no monitor"], strict=True)]
        count = int(checks[name][0])
        lines.append(f"| {name} | {count} | {_summary(times[name], 1)} | {_summary(ratio, 2)} |")
    return [*lines, f"Bare pass [s]: {_summary(bare_passes)}.", ""]


_MEMORY_SNIPPET = """
import json, resource, sys, torch
from torch.utils.data import TensorDataset
from lightning_stability.callbacks.margin_loader import margin_dataloader
from lightning_stability.callbacks.forward_output import default_forward
from lightning_stability.callbacks.margin_pass import MarginCollector, run_margin_pass
size = int(sys.argv[1])
torch.manual_seed(0)
data = TensorDataset(torch.randn(size, 8), torch.randint(0, 10, (size,)))
model = torch.nn.Linear(8, 10)
run_margin_pass(model, margin_dataloader(TensorDataset(data.tensors[0][:1000], data.tensors[1][:1000]), 4096),
                default_forward, MarginCollector())  # page in the code
def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) * 1024
before = rss()
result = run_margin_pass(model, margin_dataloader(data, 4096), default_forward, MarginCollector())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
kept = sum(t.element_size() * t.numel() for t in (result.indices, result.targets, result.margins, result.losses, result.predicted))
print(json.dumps({"kept": kept, "rise": peak - before}))
"""


def memory(quick: bool, repeats: int = 3) -> list[str]:
    size = 1_000_000 if quick else 4_000_000
    points = []
    for _ in range(repeats):  # a fresh process each time; the allocator's high-water mark varies between runs
        output = subprocess.run(
            [sys.executable, "-c", _MEMORY_SNIPPET, str(size)], check=True, capture_output=True, text=True
        ).stdout
        points.append(json.loads(output.strip().splitlines()[-1]))
    rises = [point["rise"] / size for point in points]
    return [
        "## Memory of the margin pass",
        "",
        f"A pass over N = {size:,} samples (8 features, K = 10, a linear model, batch 4,096) in a fresh process. The "
        "result keeps five vectors per sample (index, target, predicted class: int64; margin, cross entropy: "
        "float64); during the pass the per-batch pieces and the gathered copy exist at once, plus one chunk of "
        "at most 2²¹ logits.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| bytes per sample kept in the result | {points[0]['kept'] / size:.1f} |",
        f"| peak RSS rise during the pass, per sample (inputs excluded: they were loaded before), {repeats} "
        f"processes | {_summary(rises, 1)} |",
        "",
    ]
