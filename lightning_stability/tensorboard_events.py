"""A run's TensorBoard event files, read back offline, and its logger steps placed on the checks' epoch axis.

* `event_directories` — the directories under a folder (recursively) that hold event files;
* `read_scalars` — ``{tag: [(step, value), ...]}`` of the scalar tags that match some patterns;
* `CHECK_EPOCH_TAGS`, `step_to_epoch` — where the monitor logs each check's epoch, and the map from a logger
  step to the checks' epoch axis that those anchors (or the margin files' global steps) give.

TensorBoard's EventAccumulator is imported inside `read_scalars`; nothing here needs matplotlib or Lightning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CHECK_EPOCH_TAGS", "event_directories", "read_scalars", "step_to_epoch"]


CHECK_EPOCH_TAGS = ("stability/check_epoch", "stability_diagnostics/check_epoch")
"""Where the monitor logs each check's epoch (either name), at the check's logger step."""


def event_directories(events_dir: Path) -> list[Path]:
    """The directories under ``events_dir`` (recursively, itself included) that hold TensorBoard event files,
    sorted."""
    return sorted({path.parent for path in events_dir.rglob("events.out.tfevents.*") if path.is_file()})


def read_scalars(events_dir: str | Path, patterns: Sequence[re.Pattern[str]]) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of the scalar tags that one of ``patterns`` matches (``fullmatch``), read
    with TensorBoard's EventAccumulator from every directory of `event_directories` under ``events_dir``.

    Steps are sorted; a step logged twice (a resumed run) keeps the value read last. Returns ``{}`` when there
    are no event files (or no TensorBoard).
    """
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - tensorboard is a dependency of the package
        return {}
    found: dict[str, dict[int, float]] = {}
    guidance = {"scalars": 0, "histograms": 1, "images": 1, "tensors": 1, "audio": 1, "compressedHistograms": 1}
    for directory in event_directories(Path(events_dir)):
        accumulator = EventAccumulator(str(directory), size_guidance=guidance).Reload()
        for tag in accumulator.Tags().get("scalars", []):
            if any(pattern.fullmatch(tag) for pattern in patterns):
                values = found.setdefault(tag, {})
                for event in accumulator.Scalars(tag):
                    values[int(event.step)] = float(event.value)  # a resumed run's repeated steps: the last wins
    return {tag: sorted(values.items()) for tag, values in found.items()}


def step_to_epoch(
    checks: Sequence[dict[str, Any]], scalars: dict[str, list[tuple[int, float]]]
) -> Callable[[np.ndarray], np.ndarray]:
    """Logger step → the checks' epoch axis (a check of epoch E sits at E, after E's training; −1 before training).

    Anchors: the steps at which the monitor logged the check epochs (exact), else the margin files' global steps (a check of a trained epoch logs at ``global_step − 1``). Steps between two checks are placed
    linearly between their epochs, so a gradient logged mid-epoch sits between the checks around it.
    """
    anchors = {step: epoch for tag in CHECK_EPOCH_TAGS for step, epoch in scalars.get(tag, [])}
    if len(anchors) < 2:
        anchors = {
            max(int(check["global_step"]) - (1 if check["epoch"] >= 0 else 0), 0): float(check["epoch"])
            for check in checks
        }
    steps = np.array(sorted(anchors), dtype=np.float64)
    epochs = np.array([anchors[int(step)] for step in steps], dtype=np.float64)
    if steps.size == 0:
        return lambda values: np.asarray(values, dtype=np.float64)
    if steps.size == 1:
        return lambda values: np.full(np.shape(values), epochs[0])

    def convert(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        result = np.interp(values, steps, epochs)
        low_slope = (epochs[1] - epochs[0]) / (steps[1] - steps[0])
        high_slope = (epochs[-1] - epochs[-2]) / (steps[-1] - steps[-2])
        result = np.where(values < steps[0], epochs[0] + (values - steps[0]) * low_slope, result)
        return np.where(values > steps[-1], epochs[-1] + (values - steps[-1]) * high_slope, result)

    return convert
