"""Run the benchmarks and update ``benchmarks/RESULTS.md`` (issues 6 and 15).

    python benchmarks/run_all.py --quick            # about 3 minutes on 2 cores: check cost, memory, scaling to 10^6
    python benchmarks/run_all.py [--repeats 5]      # everything (about 40 minutes on 2 cores)
    python benchmarks/run_all.py --sections check fit --device cuda   # the same script on a GPU

The sections run replace their namesakes in RESULTS.md; the others are kept as they were.

Sections: overhead of the monitor on the example (epoch time, margin pass vs. a bare inference pass, theory step
vs. margin pass), scaling of ``certify`` / ``condition_b_constant`` (N = 10^4 … 10^7, time and peak memory) and of
the data check, the peer comparison with ``aum.AUMCalculator`` (speed and equal margins), and DDP (2 processes
vs. 1: the same report, wall-time ratio). Every figure is the median of ``--repeats`` runs with its min–max;
ratios are formed within one run and then summarised, because this machine is shared and noisy. Nothing here is
asserted in the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from check_cost import check_cost, fit_overhead, memory, use_clock  # noqa: E402
from fixed_part import measure as fixed_measure  # noqa: E402
from margin_pass import bare_pass  # noqa: E402

from lightning_stability import theory  # noqa: E402
from lightning_stability.callbacks.forward_output import default_forward  # noqa: E402
from lightning_stability.callbacks.margin_loader import margin_dataloader  # noqa: E402
from lightning_stability.callbacks.margin_pass import MarginCollector, MarginRecorder, run_margin_pass  # noqa: E402


def summary(values: list[float], digits: int = 3) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


# --------------------------------------------------------------------------- overhead


def overhead(repeats: int) -> list[str]:
    import pytorch_lightning as pl

    from lightning_stability import StabilityMonitor
    from lightning_stability.example import AbsMLP, MNISTDataModule

    data = MNISTDataModule()
    data.setup("fit")

    def fit(with_monitor: bool) -> float:
        pl.seed_everything(0, verbose=False)
        callbacks = [StabilityMonitor(check_at_start=False)] if with_monitor else []
        trainer = pl.Trainer(
            max_epochs=2,
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
        )
        start = time.perf_counter()
        trainer.fit(AbsMLP(), data.train_dataloader())
        return (time.perf_counter() - start) / 2

    epoch_ratios, plain, monitored = [], [], []
    for _ in range(repeats):
        without, with_ = fit(False), fit(True)
        plain.append(without)
        monitored.append(with_)
        epoch_ratios.append(with_ / without)

    images, labels = data.train_set.tensors
    size = 60_000
    tiles = -(-size // len(labels))
    dataset = torch.utils.data.TensorDataset(images.repeat(tiles, 1, 1, 1)[:size], labels.repeat(tiles)[:size])
    model = AbsMLP()
    loader = margin_dataloader(dataset, 1024)
    pass_ratios, shares, bare_times, pass_times, theory_times = [], [], [], [], []
    bare_pass(model, loader)  # warm-up
    for _ in range(repeats):
        start = time.perf_counter()
        bare_pass(model, loader)
        bare = time.perf_counter() - start
        start = time.perf_counter()
        result = run_margin_pass(model, loader, default_forward, MarginCollector())
        margin = time.perf_counter() - start
        start = time.perf_counter()
        theory.certify(result.margins, result.num_classes, loss=float(result.losses.mean()))
        step = time.perf_counter() - start
        bare_times.append(bare)
        pass_times.append(margin)
        theory_times.append(step)
        pass_ratios.append(margin / bare)
        shares.append(step / margin)
    return [
        "## Overhead on the example (AbsMLP 784-256-256-10)",
        "",
        "| measure | median (min–max) | goal | |",
        "|---|---|---|---|",
        f"| epoch time without monitor, 4,500 embedded digits [s] | {summary(plain)} | | |",
        f"| epoch time with monitor (check every epoch) [s] | {summary(monitored)} | | |",
        f"| epoch time ratio with / without | {summary(epoch_ratios)} | | |",
        f"| bare `model(x)` pass, N = 60,000 [s] | {summary(bare_times)} | | |",
        f"| margin pass, N = 60,000 [s] | {summary(pass_times)} | | |",
        f"| theory step (`certify`), N = 60,000 [s] | {summary(theory_times)} | | |",
        f"| margin pass / bare pass | {summary(pass_ratios)} | ≤ 1.10 | {verdict(statistics.median(pass_ratios) <= 1.10)} |",
        f"| theory step / margin pass | {summary(shares)} | ≤ 0.10 | {verdict(statistics.median(shares) <= 0.10)} |",
        "",
        "N = 60,000 inputs are the embedded digits tiled (full MNIST cannot be downloaded here; the cost does not "
        "depend on pixel values), margin loader batch 1,024.",
        "",
    ]


# --------------------------------------------------------------------------- scaling (one subprocess per point)

_SCALING_SNIPPET = """
import json, resource, sys, time, torch
from lightning_stability import theory
kind, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
def run(values):
    if kind == "certify":
        theory.certify(values, 10)
    else:
        theory.condition_b_constant(values, 2.0, max_mass=0.05, min_width=0.3, min_cluster_mass=10 / len(values),
                                    centre_spacing=0.3 / 8)
run(torch.randn(1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3 + 8)  # page in the code
values = torch.randn(size, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3 + 8
baseline = rss_mb()  # interpreter, torch, Lightning (code paged in by a warm-up) and the input margins
times = []
for _ in range(repeats):
    start = time.perf_counter()
    run(values)
    times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"times": times, "peak_mb": peak, "extra_mb": peak - baseline}))
"""


def _scaling_point(kind: str, size: int, repeats: int) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", _SCALING_SNIPPET, kind, str(size), str(repeats)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _exponent(sizes: list[int], medians: list[float]) -> float:
    return math.log(medians[-1] / medians[0]) / math.log(sizes[-1] / sizes[0])


def scaling(repeats: int, quick: bool) -> list[str]:
    sizes = [10**4, 10**5, 10**6] + ([] if quick else [10**7])
    lines = [
        "## Scaling of the theory step",
        "",
        "Margins ~ N(8, 3²) (a trained classifier's shape), K = 10; peak memory is the whole process's maximum RSS",
        "(Python, torch, Lightning and the data included) and its rise above the RSS once a warm-up on 1,000 margins",
        "has paged in the code and the input is loaded (the work's own memory), each N in a fresh process.",
        "`condition_b_constant`: m = 0.05,",
        "h = 0.3, m_min = 10/N, centres on the grid (h/8)ℤ, no window.",
        "",
        "| function | N | time [s] median (min–max) | peak RSS [MB] | peak above the loaded input [MB] |",
        "|---|---|---|---|---|",
    ]
    notes = []
    for kind in ("certify", "condition_b"):
        medians = []
        for size in sizes:
            point = _scaling_point(kind, size, repeats)
            medians.append(statistics.median(point["times"]))
            name = "certify" if kind == "certify" else "condition_b_constant"
            lines.append(
                f"| `{name}` | {size:,} | {summary(point['times'])} | {point['peak_mb']:.0f} | {point['extra_mb']:.0f} |"
            )
        exponent = _exponent(sizes, medians)
        notes.append(f"* measured growth exponent of `{kind}` time in N ({sizes[0]:,} → {sizes[-1]:,}): {exponent:.2f}")
        if kind == "certify":
            at_million = medians[sizes.index(10**6)]
            notes.append(
                f"* `certify` at N = 10⁶: {at_million:.2f} s (goal < 2 s: {verdict(at_million < 2)}); "
                f"ratio 10⁶/10⁵ = {at_million / medians[1]:.1f} (N log N would give 12)"
            )
    return [*lines, "", *notes, ""]


def data_check_scaling(repeats: int, quick: bool) -> list[str]:
    from data_check import inputs

    sizes = [10_000, 30_000] if quick else [10_000, 30_000, 60_000]
    direction_counts = [16, 64, 256]
    lines = [
        "## Scaling of the data check (`theory.data_clusters`)",
        "",
        "Inputs: embedded digits tiled to N × 784 with N(0, 0.05²) jitter; random directions plus 16 principal ones.",
        "",
        "| N | random directions | time [s] median (min–max) | ms per direction |",
        "|---|---|---|---|",
    ]
    by_size = {}
    for size in sizes:
        data = inputs(size)
        for count in direction_counts:
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                theory.data_clusters(data, n_random=count, n_principal=16)
                times.append(time.perf_counter() - start)
            lines.append(
                f"| {size:,} | {count} | {summary(times, 1)} | {1000 * statistics.median(times) / (count + 16):.0f} |"
            )
            if count == 256:
                by_size[size] = statistics.median(times)
    ordered = sorted(by_size)
    lines += [
        "",
        f"* growth exponent in N at 256 directions ({ordered[0]:,} → {ordered[-1]:,}): "
        f"{_exponent(ordered, [by_size[s] for s in ordered]):.2f}",
    ]
    if 60_000 in by_size:
        lines.append(
            f"* 60,000 × 784 with 256 + 16 directions: {by_size[60_000]:.1f} s (goal < 60 s: "
            f"{verdict(by_size[60_000] < 60)})"
        )
    return [*lines, ""]


# --------------------------------------------------------------------------- peer


def peer(repeats: int) -> list[str]:
    try:
        from aum import AUMCalculator
    except ImportError:
        return [
            "## Peer: aum",
            "",
            "`aum` is not installed (`pip install -c constraints.txt -e '.[dev]'`); skipped.",
            "",
        ]
    size, batch = 60_000, 128
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(size, 10, generator=generator) * 3
    targets = torch.randint(0, 10, (size,), generator=generator)

    def split(batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return [
            (torch.arange(s, min(s + batch_size, size)), logits[s : s + batch_size], targets[s : s + batch_size])
            for s in range(0, size, batch_size)
        ]

    batches, pass_batches = split(batch), split(4 * batch)  # the monitor's margin pass uses 4 × training's

    def ours(chunks: list = batches) -> torch.Tensor:  # the margin pass's recording path (under inference mode)
        recorder, collector = MarginRecorder(), MarginCollector()
        with torch.inference_mode():
            for indices, batch_logits, batch_targets in chunks:
                recorder.record(indices, batch_logits, batch_targets)
        recorder.hand_over(collector)
        return collector.compute()["margins"]

    def theirs(directory: str) -> dict:
        calculator = AUMCalculator(directory, compressed=True)
        records = {}
        for indices, batch_logits, batch_targets in batches:
            records.update(calculator.update(batch_logits, batch_targets, indices.tolist()))
        return records

    ratios, pass_ratios, our_times, pass_times, their_times = [], [], [], [], []
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(repeats):
            start = time.perf_counter()
            our_margins = ours()
            mine = time.perf_counter() - start
            start = time.perf_counter()
            ours(pass_batches)
            mine_in_pass = time.perf_counter() - start
            start = time.perf_counter()
            records = theirs(directory)
            other = time.perf_counter() - start
            our_times.append(mine)
            pass_times.append(mine_in_pass)
            their_times.append(other)
            ratios.append(other / mine)
            pass_ratios.append(other / mine_in_pass)
    their_margins = torch.tensor([records[i].margin for i in range(size)], dtype=torch.float64)
    difference = float((our_margins - their_margins).abs().max())
    return [
        "## Peer: recording per-sample margins (aum.AUMCalculator)",
        "",
        f"60,000 samples, K = 10, batches of {batch} (one epoch), identical float32 logits.",
        "",
        "| measure | median (min–max) | goal | |",
        "|---|---|---|---|",
        f"| ours (`MarginRecorder` per batch, one cat-state update, `compute`) [s] | {summary(our_times)} | | |",
        f"| `AUMCalculator.update` [s] | {summary(their_times)} | | |",
        f"| ours at the margin pass's default batch ({4 * batch}) [s] | {summary(pass_times)} | | |",
        f"| speed-up (aum / ours), same batches of {batch} | {summary(ratios, 1)} | ≥ 10× | "
        f"{verdict(statistics.median(ratios) >= 10)} |",
        f"| speed-up (aum at {batch} / ours at {4 * batch}, as each runs in practice) | {summary(pass_ratios, 1)} | | |",
        f"| max abs. margin difference | {difference:.2e} | ≤ 1e-6 | {verdict(difference <= 1e-6)} |",
        "",
    ]


# --------------------------------------------------------------------------- DDP


def _fit(devices: int, directory: Path) -> float:
    config = ROOT / "configs" / ("mnist_ddp.yaml" if devices == 2 else "mnist_abs_mlp.yaml")
    command = [
        sys.executable,
        "-m",
        "lightning_stability.cli",
        "fit",
        "--config",
        str(config),
        "--trainer.max_epochs=1",
        f"--trainer.logger.init_args.save_dir={directory}",
        "--trainer.logger.init_args.name=run",
        "--data.init_args.batch_size=64",
    ]
    if devices == 1:
        command.append("--trainer.callbacks.init_args.log_figure=false")
    start = time.perf_counter()
    subprocess.run(
        command, check=True, capture_output=True, cwd=directory, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    return time.perf_counter() - start


def ddp(repeats: int) -> list[str]:
    single_times, ddp_times, ratios, same, differences = [], [], [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
            single = _fit(1, Path(one))
            double = _fit(2, Path(two))
            single_times.append(single)
            ddp_times.append(double)
            ratios.append(double / single)
            start_one = next(Path(one).rglob("margins_epoch=start*.pt"))
            start_two = next(Path(two).rglob("margins_epoch=start*.pt"))
            a = torch.load(start_one, weights_only=True)
            b = torch.load(start_two, weights_only=True)
            same.append(torch.equal(a["margins"], b["margins"]) and a["report"] == b["report"])
            differences.append(float((a["margins"] - b["margins"]).abs().max()))
    return [
        "## DDP: 2 CPU processes (gloo) vs 1",
        "",
        "`lightning-stability fit` of the example for one epoch (the default config vs. `configs/mnist_ddp.yaml`, batch",
        "64 per process); the check before training sees identical weights in both runs and must give the same report.",
        "",
        "| measure | median (min–max) |",
        "|---|---|",
        f"| wall time, 1 process [s] | {summary(single_times, 1)} |",
        f"| wall time, 2 processes [s] | {summary(ddp_times, 1)} |",
        f"| ratio 2 processes / 1 | {summary(ratios, 2)} |",
        f"| start-check margins and report identical | {sum(same)}/{len(same)} runs |",
        f"| largest margin difference 2 vs 1 process | {max(differences):.2e} |",
        "",
        "Two processes on a 2-core machine share the same cores as one process's two threads, and DDP adds process",
        "start-up and gloo all-reduce per step, so no speed-up is expected here; the point is the identical report.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and 3 repeats (about 3 minutes)")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["check", "fit", "fixed", "memory", "overhead", "scaling", "data", "peer", "ddp"],
        help="which sections to run; the others already in RESULTS.md are kept",
    )
    parser.add_argument("--device", default="cpu", help="device of the check/fit sections (cpu or cuda)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="clock of the check/fit sections: wall time, or the process's CPU time (robust to other load)",
    )
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    if args.quick:
        args.sections = [name for name in args.sections if name in ("check", "memory", "scaling")]
        args.repeats = min(args.repeats, 3)
    torch.set_num_threads(args.threads)
    # Lightning's Trainer resets the thread count to the cores per process unless OMP_NUM_THREADS is set: set it,
    # so that passes inside a fit and outside run with the same threads
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    clock = use_clock(args.clock, args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch "
        f"{torch.__version__}. Every figure is the median of the runs its section states "
        "(min–max in parentheses); each section says when and by which command it was measured.",
        "",
    ]
    command = " ".join(["python benchmarks/run_all.py", *sys.argv[1:]])
    stamp = (
        f"*Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}` "
        f"({args.repeats} repeats, {args.threads} intra-op thread(s), check/fit timed by {clock}; load average at "
        f"start {load:.2f}).*"
    )
    sections = {
        "check": lambda: check_cost(args.repeats, args.quick, args.device),
        "fit": lambda: fit_overhead(args.repeats, args.quick, args.device),
        "fixed": lambda: [
            "## Fixed part of a check inside a fit",
            "",
            "`python benchmarks/fixed_part.py` (also `event_cost.py --part fixed`): see its docstring.",
            "",
            *fixed_measure(args.repeats),
            "",
        ],
        "memory": lambda: memory(args.quick, args.repeats),
        "overhead": lambda: overhead(args.repeats),
        "scaling": lambda: scaling(args.repeats, args.quick),
        "data": lambda: data_check_scaling(args.repeats, args.quick),
        "peer": lambda: peer(args.repeats),
        "ddp": lambda: ddp(args.repeats),
    }
    output = Path(args.output)
    kept = _sections(output.read_text()) if output.exists() else {}
    fresh: dict[str, list[str]] = {}
    for name in args.sections:
        print(f"[run_all] {name} …", flush=True)
        part = sections[name]()
        part = [part[0], "", stamp, *part[1:]]
        print("\n".join(part), flush=True)
        fresh[part[0]] = part
    for title, part in kept.items():  # sections not run this time stay as they were (with their own dates)
        if title not in fresh and not title.startswith("# "):
            fresh[title] = part
    for part in fresh.values():
        lines += part
    output.write_text("\n".join(lines).rstrip("\n") + "\n")
    print(f"[run_all] wrote {args.output}")


def _sections(text: str) -> dict[str, list[str]]:
    """The ``## `` sections of a RESULTS.md by title line (the header before the first one is dropped)."""
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = parts.setdefault(line, [])
        if current is not None:
            current.append(line)
    for part in parts.values():
        if part[-1] != "":
            part.append("")
    return parts


if __name__ == "__main__":
    main()
