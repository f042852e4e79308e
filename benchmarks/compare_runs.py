"""Train the example configs and compare what two versions of the package wrote (a refactor must change nothing).

    python benchmarks/compare_runs.py run OUT_DIR            # train every config below, logs under OUT_DIR/<config>
    python benchmarks/compare_runs.py compare BEFORE AFTER   # exit 1 and list every difference

Compared, per config: every TensorBoard scalar (tag, step, value) except the ``stability_cost/`` timings (seconds
differ from run to run), ``samples.csv`` byte for byte, and every margin file (the same names; every tensor equal,
every other entry equal). The configs fix their seeds and train deterministically on the CPU.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

CONFIGS = ("configs/mnist_abs_mlp.yaml", "configs/instability_demo.yaml")
TIMED = ("stability_cost/",)


def run(out: Path) -> None:
    for config in CONFIGS:
        name = Path(config).stem
        command = [
            "lightning-stability",
            "fit",
            "--config",
            config,
            f"--trainer.logger.init_args.save_dir={out / name}",
            "--trainer.enable_checkpointing=false",
        ]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)


def scalars(run_dir: Path) -> dict[tuple[str, int], float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[tuple[str, int], float] = {}
    for events in sorted(run_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            if tag.startswith(TIMED):
                continue
            for event in accumulator.Scalars(tag):
                values[(tag, event.step)] = event.value
    return values


def same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dataclass_fields__") and type(a) is type(b):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return bool(a == b) or (a != a and b != b)  # NaN equals NaN here


def compare(before: Path, after: Path) -> list[str]:
    import torch

    differences: list[str] = []
    for config in CONFIGS:
        name = Path(config).stem
        old, new = scalars(before / name), scalars(after / name)
        if old.keys() != new.keys():
            differences.append(f"{name}: scalar keys differ: {sorted(set(old) ^ set(new))[:10]}")
        differences += [
            f"{name}: {key} {old[key]} != {new[key]}" for key in old.keys() & new.keys() if old[key] != new[key]
        ]
        print(f"{name}: {len(old)} scalar points compared")
        for kind in ("samples.csv", "margins_epoch=*.pt"):
            files_old = sorted(p.relative_to(before / name) for p in (before / name).rglob(kind))
            files_new = sorted(p.relative_to(after / name) for p in (after / name).rglob(kind))
            if files_old != files_new:
                differences.append(f"{name}: {kind} files differ: {files_old} vs {files_new}")
                continue
            for relative in files_old:
                a, b = before / name / relative, after / name / relative
                if kind == "samples.csv":
                    equal = a.read_bytes() == b.read_bytes()
                else:
                    equal = same(torch.load(a, weights_only=False), torch.load(b, weights_only=False))
                if not equal:
                    differences.append(f"{name}: {relative} differs")
            print(f"{name}: {len(files_old)} {kind} compared")
    return differences


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "run":
        run(Path(argv[1]).resolve())
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        differences = compare(Path(argv[1]), Path(argv[2]))
        print("\n".join(differences) or "no difference")
        return 1 if differences else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
