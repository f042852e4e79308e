"""The GPU check: what the StabilityMonitor costs on one CUDA GPU, prepared before a GPU is lent.

Run it through ``benchmarks/gpu_check.sh OUT_DIR [--device cpu]`` (which installs the package first). Directly:
``python benchmarks/gpu_check.py OUT_DIR [--device cuda|cpu] [--deadline UNIX_SECONDS]``.

The driver runs every section in its own Python process (a crash, a hang or a CUDA error in one section cannot
take the others with it), with a time limit taken from one global deadline; a section that no longer fits is
skipped with a line saying so. Each section writes ``OUT_DIR/section_<name>.json``; the driver gathers them into
``OUT_DIR/results.json`` and ``OUT_DIR/results.md`` (a Markdown table for ``benchmarks/RESULTS.md``) and prints
both. Exit status: 0 when every section ran (or does not apply on this device), 1 when a section failed, 2 when
none failed but one was skipped for time.

Sections (the model is a small conv net, 3 conv layers + a linear layer, 10 classes, on random 3×32×32 images
drawn on the host with a fixed seed, in a ``TensorDataset``):

* ``margin_pass``: ``run_margin_pass`` against a bare ``model(x)`` loop over the same ``margin_dataloader``
  (``pin_memory=True`` on CUDA, non-blocking copies), fp32 and bf16-mixed, interleaved repetitions, medians.
* ``whole_check``: a ``StabilityMonitor`` inside a short ``Trainer.fit`` (1 epoch, lr 1e-12, TensorBoard logger
  into OUT_DIR): ``monitor.last_cost`` of each check and a bare pass over the monitor's own loader just before
  and just after the check, in the same hook.
* ``subset_check``: the same with ``subset_size`` (5,000 on CUDA): the subset check's seconds and its ratio to
  the whole check.
* ``memory``: peak GPU memory of the margin pass above the model's baseline, per sample, at two N (the slope is
  the per-sample part; the raw rise also holds one batch's transient memory).
* ``fsdp``: the check before training under ``strategy="fsdp"`` (devices=1) against the same check without it,
  same seed and weights: ``last_report.to_dict()`` equal, or the largest absolute difference.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

SECTIONS = ("margin_pass", "whole_check", "subset_check", "memory", "fsdp")
"""In the order they run (FSDP last: it starts a process group that stays for the rest of its process)."""

BUDGET_S = {
    "cuda": {"margin_pass": 120, "whole_check": 60, "subset_check": 45, "memory": 45, "fsdp": 90},
    "cpu": {"margin_pass": 60, "whole_check": 45, "subset_check": 40, "memory": 30, "fsdp": 10},
}
"""Each section's planned seconds (its process's start-up and data included); its time limit is twice that, cut
to what is left before the deadline."""

MIN_START_S = 25
"""A section is skipped when less than this is left before the deadline."""


def sizes(device: str) -> dict[str, Any]:
    if device == "cuda":
        return {
            "samples": 50_000,
            "repeats": 5,
            "batch": 1024,
            "train_batch": 256,
            "subset": 5_000,
            "memory_samples": (10_000, 50_000),
            "fsdp_samples": 10_000,
        }
    return {
        "samples": 2_000,
        "repeats": 1,
        "batch": 1024,
        "train_batch": 256,
        "subset": 500,
        "memory_samples": (1_000, 2_000),
        "fsdp_samples": 1_000,
    }


# ---------------------------------------------------------------------------------------------- shared pieces


def lightning_module():
    """``lightning.pytorch`` if installed, else ``pytorch_lightning`` (the package supports both)."""
    try:
        import lightning.pytorch as pl
    except ImportError:
        import pytorch_lightning as pl
    return pl


def random_images(samples: int, seed: int = 0):
    import torch
    from torch.utils.data import TensorDataset

    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(samples, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (samples,), generator=generator)
    return TensorDataset(images, labels)


def conv_net(lr: float = 1e-12):
    """3 conv layers (3→32→64→64, stride 2) + a linear layer to 10 classes, as a LightningModule."""
    import torch
    from torch import nn

    pl = lightning_module()

    class ConvNet(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lr = lr
            self.features = nn.Sequential(
                nn.Conv2d(3, 32, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(64, 64, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Flatten(),
            )
            self.head = nn.Linear(64 * 4 * 4, 10)

        def forward(self, x):
            return self.head(self.features(x))

        def training_step(self, batch, batch_index):
            inputs, targets = batch
            return nn.functional.cross_entropy(self(inputs), targets)

        def configure_optimizers(self):
            # lr 1e-12 leaves the float32 weights unchanged: no instability event (whose blame grid, a figure,
            # would add to that one check)
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    return ConvNet()


def synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def autocast(device: str, precision: str):
    import torch

    if precision == "bf16-mixed":
        return lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext


def bare_pass(model, loader, device, precision: str = "32") -> float:
    """Seconds of ``model(x)`` over ``loader`` (``(indices, (x, y))`` batches) in eval mode under inference mode."""
    import torch

    context = autocast(torch.device(device).type, precision)
    was_training = model.training
    model.eval()
    synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode(), context():
        for _, (inputs, _targets) in loader:
            model(inputs.to(device, non_blocking=True))
    synchronize(device)
    seconds = time.perf_counter() - start
    model.train(was_training)
    return seconds


def margin_pass(model, loader, device, precision: str = "32") -> tuple[float, Any]:
    import torch

    from lightning_stability.callbacks.forward_output import default_forward
    from lightning_stability.callbacks.margin_pass import MarginCollector, run_margin_pass

    collector = MarginCollector().to(device)

    def move(batch):
        return [tensor.to(device, non_blocking=True) for tensor in batch]

    synchronize(device)
    start = time.perf_counter()
    result = run_margin_pass(
        model,
        loader,
        default_forward,
        collector,
        move_to_device=move,
        forward_context=autocast(torch.device(device).type, precision),
    )
    synchronize(device)
    return time.perf_counter() - start, result


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def trainer(device: str, out_dir: Path, name: str, monitor, **options: Any):
    pl = lightning_module()
    return pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[monitor],
        logger=pl.loggers.TensorBoardLogger(str(out_dir / "tensorboard"), name=name),
        default_root_dir=str(out_dir / "lightning"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )


def timed_monitor(device: str, paired_bare: bool, **options: Any):
    """A StabilityMonitor that records every check: its seconds timed from outside, ``last_cost``, the report
    (exact checks), and (``paired_bare``) the mean of bare passes over its own loader just before and after."""
    from lightning_stability import StabilityMonitor

    class TimedMonitor(StabilityMonitor):
        records: list[dict[str, Any]]

        def run_check(self, trainer, pl_module, epoch, in_epoch_end) -> None:
            loader = self.source.loader(trainer) if paired_bare else None
            before = bare_pass(pl_module, loader, pl_module.device) if loader is not None else None
            self.last_report = None
            synchronize(pl_module.device)
            start = time.perf_counter()
            super().run_check(trainer, pl_module, epoch, in_epoch_end)
            synchronize(pl_module.device)
            seconds = time.perf_counter() - start
            after = bare_pass(pl_module, loader, pl_module.device) if loader is not None else None
            record: dict[str, Any] = {"epoch": epoch, "seconds_from_outside": seconds, "cost": dict(self.last_cost)}
            if before is not None and after is not None:
                record["paired_bare_seconds"] = (before + after) / 2
            if self.last_report is not None:
                record["report"] = {key: float(value) for key, value in self.last_report.to_dict().items()}
            self.records.append(record)

    monitor = TimedMonitor(**options)
    monitor.records = []
    return monitor


def fit_with_monitor(
    device: str,
    out_dir: Path,
    name: str,
    samples: int,
    train_batch: int,
    paired_bare: bool,
    strategy: str | None = None,
    **monitor_options: Any,
) -> list[dict[str, Any]]:
    import torch

    pl = lightning_module()
    dataset = random_images(samples)
    pl.seed_everything(0, verbose=False)
    model = conv_net()
    loader = torch.utils.data.DataLoader(dataset, batch_size=train_batch, shuffle=True)
    monitor = timed_monitor(device, paired_bare, check_at_start=True, **monitor_options)
    extra = {} if strategy is None else {"strategy": strategy}
    trainer(device, out_dir, name, monitor, **extra).fit(model, loader)
    return monitor.records


# ---------------------------------------------------------------------------------------------- the sections


def section_margin_pass(device: str, out_dir: Path, deadline: float) -> dict[str, Any]:
    import torch

    from lightning_stability.callbacks.margin_loader import margin_dataloader

    size = sizes(device)
    dataset = random_images(size["samples"])
    torch.manual_seed(0)
    model = conv_net().to(device)
    loader = margin_dataloader(dataset, size["batch"], pin_memory=device == "cuda")
    precisions = ["32", "bf16-mixed"]
    notes = []
    if device == "cpu" and not getattr(torch.backends.mkldnn, "is_available", lambda: False)():
        precisions = ["32"]
        notes.append("bf16-mixed skipped: no oneDNN bf16 on this CPU build")
    for precision in precisions:  # warm-up (cuDNN autotuning, allocator), not counted
        bare_pass(model, loader, device, precision)
        margin_pass(model, loader, device, precision)
    times: dict[str, dict[str, list[float]]] = {p: {"bare": [], "margin": [], "ratio": []} for p in precisions}
    last_round = 0.0
    for repeat in range(size["repeats"]):
        if repeat and time.time() + 1.5 * last_round > deadline:
            notes.append(f"stopped after {repeat} of {size['repeats']} repetitions: the section's time ran short")
            break
        started = time.perf_counter()
        for precision in precisions:
            if repeat % 2 == 0:  # alternate the order, so neither side always runs on a warmer machine
                bare = bare_pass(model, loader, device, precision)
                margin, _ = margin_pass(model, loader, device, precision)
            else:
                margin, _ = margin_pass(model, loader, device, precision)
                bare = bare_pass(model, loader, device, precision)
            times[precision]["bare"].append(bare)
            times[precision]["margin"].append(margin)
            times[precision]["ratio"].append(margin / bare)
        last_round = time.perf_counter() - started
    return {
        "samples": size["samples"],
        "batch": size["batch"],
        "notes": notes,
        "precisions": {p: {key: summary(values) for key, values in v.items()} for p, v in times.items()},
    }


def section_whole_check(device: str, out_dir: Path, deadline: float) -> dict[str, Any]:
    size = sizes(device)
    records = fit_with_monitor(device, out_dir, "whole_check", size["samples"], size["train_batch"], True)
    after = [r for r in records if r["epoch"] >= 0]
    if not after:
        raise RuntimeError(f"no check after an epoch among {len(records)} checks")
    totals = [r["cost"]["stability_cost/total_seconds"] for r in after]
    bares = [r["paired_bare_seconds"] for r in after]
    return {
        "samples": size["samples"],
        "checks": records,
        "whole_check_seconds": statistics.median(totals),
        "pass_seconds": statistics.median(r["cost"]["stability_cost/pass_seconds"] for r in after),
        "theory_seconds": statistics.median(r["cost"]["stability_cost/theory_seconds"] for r in after),
        "publish_seconds": statistics.median(r["cost"]["stability_cost/publish_seconds"] for r in after),
        "bare_seconds": statistics.median(bares),
        "whole_check_over_bare": statistics.median(t / b for t, b in zip(totals, bares, strict=True)),
        "first_check_seconds": records[0]["cost"].get("stability_cost/total_seconds"),
    }


def section_subset_check(device: str, out_dir: Path, deadline: float) -> dict[str, Any]:
    size = sizes(device)
    full = fit_with_monitor(device, out_dir, "subset_reference", size["samples"], size["train_batch"], True)
    subset = fit_with_monitor(
        device, out_dir, "subset_check", size["samples"], size["train_batch"], False, subset_size=size["subset"]
    )
    whole = statistics.median(r["cost"]["stability_cost/total_seconds"] for r in full if r["epoch"] >= 0)
    bare = statistics.median(r["paired_bare_seconds"] for r in full if r["epoch"] >= 0)
    checks = [r["cost"]["stability_cost/total_seconds"] for r in subset if r["epoch"] >= 0]
    seconds = statistics.median(checks)
    return {
        "samples": size["samples"],
        "subset_size": size["subset"],
        "checks": subset,
        "reference_checks": full,
        "subset_check_seconds": seconds,
        "whole_check_seconds": whole,
        "bare_seconds": bare,
        "subset_over_whole": seconds / whole,
        "subset_over_bare": seconds / bare,
    }


def section_memory(device: str, out_dir: Path, deadline: float) -> dict[str, Any]:
    import torch

    from lightning_stability.callbacks.margin_loader import margin_dataloader

    size = sizes(device)
    torch.manual_seed(0)
    model = conv_net().to(device)
    results: dict[str, Any] = {"batch": size["batch"], "points": []}
    if device != "cuda":
        results["notes"] = [
            "CPU: no CUDA memory statistics; the figure is the rise of the process's peak RSS "
            "(ru_maxrss) during the pass, not GPU memory"
        ]
    for precision in ("32", "bf16-mixed"):
        for samples in size["memory_samples"]:
            loader = margin_dataloader(random_images(samples), size["batch"], pin_memory=device == "cuda")
            if device == "cuda":
                margin_pass(model, loader, device, precision)  # warm-up: cuDNN workspaces, allocator pools
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                baseline = torch.cuda.memory_allocated()  # the model's weights (inputs live on the host)
                _, result = margin_pass(model, loader, device, precision)
                rise = torch.cuda.max_memory_allocated() - baseline
            else:
                margin_pass(model, loader, device, precision)  # warm-up, as on CUDA
                baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                _, result = margin_pass(model, loader, device, precision)
                rise = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline)
            del result
            results["points"].append(
                {
                    "precision": precision,
                    "samples": samples,
                    "baseline_bytes": baseline,
                    "peak_rise_bytes": rise,
                    "rise_per_sample": rise / samples,
                }
            )
    for precision in ("32", "bf16-mixed"):
        small, large = [p for p in results["points"] if p["precision"] == precision]
        results[f"slope_bytes_per_sample_{precision}"] = (large["peak_rise_bytes"] - small["peak_rise_bytes"]) / (
            large["samples"] - small["samples"]
        )
    results["one_batch_input_bytes"] = size["batch"] * 3 * 32 * 32 * 4
    return results


def compare_reports(plain: list[dict[str, Any]], sharded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check by check (in order), the reports' values: equal, or their largest absolute difference."""
    comparisons = []
    for a, b in zip(plain, sharded, strict=False):
        if "report" not in a or "report" not in b:
            continue
        keys = sorted(set(a["report"]) | set(b["report"]))
        differences = {}
        for key in keys:
            x, y = a["report"].get(key, math.nan), b["report"].get(key, math.nan)
            same = x == y or (math.isnan(x) and math.isnan(y))
            # a value on one side only, or NaN against a number: an infinite difference
            differences[key] = 0.0 if same else (math.inf if math.isnan(x - y) else abs(x - y))
        comparisons.append(
            {
                "epoch": a["epoch"],
                "equal": all(v == 0.0 for v in differences.values()),
                "max_abs_difference": max(differences.values()) if differences else math.nan,
                "keys": len(keys),
                "differing_keys": [k for k, v in differences.items() if v != 0.0],
            }
        )
    return comparisons


def section_fsdp(device: str, out_dir: Path, deadline: float) -> dict[str, Any]:
    if device != "cuda":
        return {"status": "not applicable", "message": "FSDP part skipped: it needs CUDA (run without --device cpu)"}
    import torch

    pl = lightning_module()
    size = sizes(device)
    try:
        pl.Trainer(accelerator="gpu", devices=1, strategy="fsdp", logger=False, enable_checkpointing=False)
    except Exception as error:  # reported, then the check goes on
        return {
            "status": "unsupported",
            "message": f"the installed Lightning ({pl.__version__}) does not run "
            f"strategy='fsdp' on one device: {type(error).__name__}: {error}",
        }
    plain = fit_with_monitor(device, out_dir, "fsdp_reference", size["fsdp_samples"], size["train_batch"], False)
    sharded = fit_with_monitor(
        device, out_dir, "fsdp", size["fsdp_samples"], size["train_batch"], False, strategy="fsdp"
    )
    comparisons = compare_reports(plain, sharded)
    if not comparisons:
        raise RuntimeError(f"no exact check to compare (plain: {len(plain)} checks, fsdp: {len(sharded)})")
    return {
        "samples": size["fsdp_samples"],
        "torch": torch.__version__,
        "comparisons": comparisons,
        "plain_checks": plain,
        "fsdp_checks": sharded,
        "start_check_equal": comparisons[0]["equal"],
        "start_check_max_abs_difference": comparisons[0]["max_abs_difference"],
    }


# ---------------------------------------------------------------------------------------------- processes


def run_section(name: str, device: str, out_dir: Path, deadline: float) -> None:
    """In a child process: run one section, write ``section_<name>.json`` whatever happens."""
    started = time.perf_counter()
    record: dict[str, Any] = {"section": name}
    try:
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError("--device cuda, but torch.cuda.is_available() is False")
            torch.backends.cudnn.benchmark = True
        data = globals()[f"section_{name}"](device, out_dir, deadline)
        record["status"] = data.pop("status", "ok")
        if "message" in data:
            record["message"] = data.pop("message")
        record["data"] = data
    except Exception as error:  # recorded; the other sections go on
        record["status"] = "error"
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc()
    record["seconds"] = time.perf_counter() - started
    (out_dir / f"section_{name}.json").write_text(json.dumps(record, indent=2, default=str))


def environment(device: str) -> dict[str, Any]:
    import torch

    pl = lightning_module()
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning_module": pl.__name__,
        "lightning": pl.__version__,
        "device": device,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    for name in ("lightning", "pytorch_lightning", "torchmetrics", "tensorboard"):
        try:
            info[f"{name}_version"] = __import__(name).__version__
        except ImportError:
            info[f"{name}_version"] = None
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def drive(device: str, out_dir: Path, deadline: float) -> int:
    started = time.time()
    env = environment(device)
    print("environment: " + ", ".join(f"{key} {value}" for key, value in env.items()), flush=True)
    sections: dict[str, Any] = {}
    for name in SECTIONS:
        left = deadline - time.time()
        if left < MIN_START_S:
            line = f"SKIPPED {name}: only {left:.0f} s left before the deadline (a section needs {MIN_START_S} s)"
            print(line, flush=True)
            sections[name] = {"section": name, "status": "skipped (time)", "message": line}
            continue
        limit = min(2 * BUDGET_S[device][name], left - 5)
        print(
            f"--- {name}: starting (budget {BUDGET_S[device][name]} s, limit {limit:.0f} s, {left:.0f} s left)",
            flush=True,
        )
        path = out_dir / f"section_{name}.json"
        path.unlink(missing_ok=True)
        section_started = time.perf_counter()
        command = [
            sys.executable,
            __file__,
            str(out_dir),
            "--device",
            device,
            "--section",
            name,
            "--deadline",  # the section's own soft deadline (fewer repetitions): its budget
            str(time.time() + min(BUDGET_S[device][name], limit - 5)),
        ]
        try:
            completed = subprocess.run(command, timeout=limit, capture_output=True, text=True)
            output, code = completed.stdout + completed.stderr, completed.returncode
        except subprocess.TimeoutExpired as expired:
            output = (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
            code = None
        elapsed = time.perf_counter() - section_started
        (out_dir / f"section_{name}.log").write_text(output)
        if path.exists():
            record = json.loads(path.read_text())
        elif code is None:
            record = {"section": name, "status": "error", "error": f"timed out after {limit:.0f} s (killed)"}
        else:
            record = {
                "section": name,
                "status": "error",
                "error": f"the section's process exited {code} without a result; last output: {output[-2000:]}",
            }
        record["wall_seconds"] = elapsed
        sections[name] = record
        status = record["status"] + (f": {record['error']}" if record.get("error") else "")
        print(
            f"--- {name}: {status} ({elapsed:.1f} s elapsed in this part, {time.time() - started:.1f} s "
            "in all sections)",
            flush=True,
        )
        if record.get("traceback"):
            print(record["traceback"], flush=True)
        if record.get("message"):
            print(f"    {record['message']}", flush=True)
    results = {
        "environment": env,
        "sizes": sizes(device),
        "sections": sections,
        "measured_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "seconds": time.time() - started,
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    try:
        table = markdown(results)
    except Exception:  # the figures are in results.json already
        print(f"the Markdown table failed (the figures are in results.json):\n{traceback.format_exc()}", flush=True)
        return 1
    (out_dir / "results.md").write_text(table)
    print("\n" + table, flush=True)
    print(f"figures: {out_dir / 'results.json'}, {out_dir / 'results.md'}", flush=True)
    statuses = [record["status"] for record in sections.values()]
    if "error" in statuses:
        print("FAILED: " + ", ".join(n for n, r in sections.items() if r["status"] == "error"), flush=True)
        return 1
    if "skipped (time)" in statuses:
        print("INCOMPLETE: sections skipped for time", flush=True)
        return 2
    return 0


def markdown(results: dict[str, Any]) -> str:
    env, size, sections = results["environment"], results["sizes"], results["sections"]
    device = env["device"]
    where = env.get("gpu") or f"CPU ({env['machine']}, {env['cpus']} cores)"
    rows: list[tuple[str, str]] = []

    def seconds(value: Any) -> str:
        return "—" if value is None else f"{value:.3f}"

    def spread(entry: dict[str, float], digits: int = 3) -> str:
        return f"{entry['median']:.{digits}f} ({entry['min']:.{digits}f}–{entry['max']:.{digits}f}, n = {entry['n']})"

    def failed(name: str) -> bool:
        record = sections.get(name, {"status": "not run"})
        if record["status"] in ("ok",):
            return False
        message = record.get("error") or record.get("message") or record.get("data", {}).get("message", "")
        rows.append((f"{name}", f"**{record['status']}**: {message}"))
        return True

    if not failed("margin_pass"):
        data = sections["margin_pass"]["data"]
        for precision, values in data["precisions"].items():
            rows.append((f"bare `model(x)` pass, {precision} [s]", spread(values["bare"])))
            rows.append((f"margin pass, {precision} [s]", spread(values["margin"])))
            rows.append((f"margin pass / bare pass, {precision}", spread(values["ratio"])))
        for note in data["notes"]:
            rows.append(("note (margin pass)", note))
    if not failed("whole_check"):
        data = sections["whole_check"]["data"]
        rows += [
            ("bare pass beside the check (mean of just before and after) [s]", seconds(data["bare_seconds"])),
            ("whole check after the epoch, `stability_cost/total_seconds` [s]", seconds(data["whole_check_seconds"])),
            (
                "… of which `pass_seconds` / `theory_seconds` / `publish_seconds` [s]",
                " / ".join(seconds(data[k]) for k in ("pass_seconds", "theory_seconds", "publish_seconds")),
            ),
            ("first check of the fit (before training) [s]", seconds(data["first_check_seconds"])),
            ("whole check / bare pass", f"{data['whole_check_over_bare']:.3f}"),
        ]
    if not failed("subset_check"):
        data = sections["subset_check"]["data"]
        rows += [
            (f"subset check, `subset_size={data['subset_size']:,}` [s]", seconds(data["subset_check_seconds"])),
            ("subset check / whole check (same process)", f"{data['subset_over_whole']:.3f}"),
            ("subset check / bare pass", f"{data['subset_over_bare']:.3f}"),
        ]
    if not failed("memory"):
        data = sections["memory"]["data"]
        unit = "GPU memory" if device == "cuda" else "peak RSS (CPU)"
        for point in data["points"]:
            rows.append(
                (
                    f"{unit} rise of the pass, {point['precision']}, N = {point['samples']:,} [bytes/sample]",
                    f"{point['rise_per_sample']:.1f}",
                )
            )
        for precision in ("32", "bf16-mixed"):
            rows.append(
                (
                    f"{unit} slope between the two N, {precision} [bytes/sample]",
                    f"{data[f'slope_bytes_per_sample_{precision}']:.1f}",
                )
            )
    record = sections.get("fsdp", {"status": "not run"})
    if record["status"] == "ok":
        data = record["data"]
        for comparison in data["comparisons"]:
            label = "before training" if comparison["epoch"] < 0 else f"after epoch {comparison['epoch']}"
            verdict = (
                "equal (all {} values)".format(comparison["keys"])
                if comparison["equal"]
                else f"not equal: max abs difference {comparison['max_abs_difference']:.3g} "
                f"({', '.join(comparison['differing_keys'])})"
            )
            rows.append((f"FSDP (1 GPU) vs unsharded `last_report.to_dict()`, check {label}", verdict))
    else:
        failed("fsdp")
    timing = ", ".join(f"{n} {record.get('wall_seconds', 0):.0f} s" for n, record in sections.items())
    lines = [
        f"*{results['measured_utc']}; {where}; torch {env['torch']}, {env['lightning_module']} {env['lightning']}; "
        f"N = {size['samples']:,} random 3×32×32 images, conv net 3 conv + linear, 10 classes, margin loader batch "
        f"{size['batch']}, {size['repeats']} repetition(s); parts: {timing}.*",
        "",
        "| measure | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--deadline", type=float, default=None, help="Unix time by which everything must end")
    parser.add_argument("--section", choices=SECTIONS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    deadline = args.deadline if args.deadline is not None else time.time() + 450
    if args.section is not None:
        if args.device == "cpu":
            import torch

            torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        run_section(args.section, args.device, args.out_dir.resolve(), deadline)
        return 0
    return drive(args.device, args.out_dir.resolve(), deadline)


if __name__ == "__main__":
    sys.exit(main())
