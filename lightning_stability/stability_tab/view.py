"""One run's view, as the Stability tab and the HTML page show it: pure data, built from what the run wrote.

`run_view` turns a run's scalars (``{tag: [(step, value), ...]}``, from TensorBoard's data provider or the event
files), its texts (``{tag: [(step, text), ...]}``) and its margin files (`lightning_stability.files.load_margin_files`)
into one JSON-ready dict: the checks (one row per exact check), the verdict in words (`verdict.py`), the samples to
blame at each instability event and the other monitors' panels. Every number is a float or ``None`` (never NaN:
JSON has none). Nothing here reads a file or knows a web request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..check_events import instability_events
from ..figures.report import DYNAMICS_PANELS
from ..tensorboard_events import CHECK_EPOCH_TAGS, step_to_epoch
from .verdict import verdict

__all__ = ["CHECK_TAGS", "STOP_TAG", "SUMMARY_TAG", "VIEW_TAGS", "run_view", "wanted_scalar"]

CHECK_TAGS = {
    "accuracy": "stability/accuracy",
    "loss": "stability/loss",
    "loss_floor": "stability/loss_floor",
    "theorem_a_floor": "stability/theorem_a/floor",
    "theorem_b_floor": "stability/theorem_b/floor",
    "event": "stability_events/instability",
    "forgotten": "stability_events/flip_forgotten",  # a mass: the fraction of the samples (weighted)
    "learned": "stability_events/flip_learned",
    "cost": "stability_cost/total_seconds",
}
"""A check's columns and the scalar tags they are read from (docs/metrics.md)."""

SUMMARY_TAG = "stability/summary"
"""The monitor's text summary of each check (its TensorBoard tag is ``stability/summary/text_summary``)."""

STOP_TAG = "stability/stop"
"""Why training stopped, logged once at fit end (`lightning_stability.callbacks.publish.CheckPublisher.publish_page`):
the first line in a few words, the monitor's full reason after it."""

VIEW_TAGS = (*CHECK_TAGS.values(), *CHECK_EPOCH_TAGS)
_PANEL_PATTERNS = [re.compile(panel.pattern) for panel in DYNAMICS_PANELS]

# the blame sets of a margin file, causes first (smallest margins, the Condition B witness, an isolated input
# cluster), then the samples that flipped (docs/samples.md)
BLAME_ORDER = ("worst", "witness", "data_cluster", "forgotten")


def wanted_scalar(tag: str) -> bool:
    """Whether the view reads the scalar ``tag`` (a check's column, the check epoch or a panel's series)."""
    return tag in VIEW_TAGS or any(pattern.fullmatch(tag) for pattern in _PANEL_PATTERNS)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, NaN or infinite: JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _text_tag(texts: dict[str, list[tuple[int, str]]], tag: str) -> list[tuple[int, str]]:
    """The texts of ``tag`` (as logged, or with TensorBoard's ``/text_summary`` suffix), by step."""
    return sorted(texts.get(tag, []) + texts.get(f"{tag}/text_summary", []))


def _checks_from_scalars(scalars: dict[str, list[tuple[int, float]]]) -> list[dict[str, Any]]:
    by_tag = {name: dict(scalars.get(tag, [])) for name, tag in CHECK_TAGS.items()}
    epochs: dict[int, float] = {}
    for tag in CHECK_EPOCH_TAGS:
        epochs.update(dict(scalars.get(tag, [])))
    checks = []
    for step in sorted(by_tag["accuracy"]):
        row: dict[str, Any] = {"step": int(step), "epoch": None if step not in epochs else int(epochs[step])}
        for name in CHECK_TAGS:
            row[name] = _number(by_tag[name].get(step))
        row["event"] = bool(row["event"] is not None and row["event"] >= 0.5)
        checks.append(row)
    return checks


def _flips(previous: dict[str, Any], check: dict[str, Any]) -> tuple[int, int]:
    """Samples wrong now that were right at the previous check, and the reverse, by sample index."""
    before = dict(
        zip(previous["indices"].tolist(), (previous["predicted"] == previous["targets"]).tolist(), strict=True)
    )
    forgotten = learned = 0
    for index, right in zip(check["indices"].tolist(), (check["predicted"] == check["targets"]).tolist(), strict=True):
        if index in before and before[index] != right:
            forgotten, learned = forgotten + (not right), learned + right
    return forgotten, learned


def _checks_from_margin_files(files: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    events = set(instability_events(files)[0])
    checks = []
    for position, file in enumerate(files):
        report = file["report"]
        row: dict[str, Any] = {"step": int(file["global_step"]), "epoch": int(file["epoch"])}
        for name, key in (("accuracy", "accuracy"), ("loss", "loss"), ("loss_floor", "loss_floor")):
            row[name] = _number(report.get(key))
        row["theorem_a_floor"] = _number(report.get("theorem_a/floor"))
        row["theorem_b_floor"] = _number(report.get("theorem_b/floor"))
        row["event"] = position in events
        flips: tuple[int, int] | tuple[None, None] = (None, None)
        if position and all("predicted" in f for f in (files[position - 1], file)):
            flips = _flips(files[position - 1], file)
        size = max(int(file["indices"].numel()), 1)  # masses, as the monitor logs them (uniform weights)
        row["forgotten"], row["learned"] = (None if value is None else value / size for value in flips)
        row["cost"] = None  # a margin file does not hold what its check cost
        checks.append(row)
    return checks


def _blame(files: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per instability event whose margin file holds blame sets: the sets, causes first, non-empty ones only."""
    blamed = []
    for position in instability_events(files)[0]:
        cells = files[position].get("blame_cells") or {}
        sets = []
        for key in [*BLAME_ORDER, *sorted(set(cells) - set(BLAME_ORDER))]:
            cell = cells.get(key)
            if not cell or not len(cell.get("index", [])):
                continue
            margins = cell.get("margin")
            rows = [
                {
                    "index": int(index),
                    "label": int(cell["target"][i]),
                    "predicted": int(cell["predicted"][i]),
                    "margin": None if margins is None else _number(margins[i]),
                }
                for i, index in enumerate(cell["index"].tolist())
            ]
            sets.append(
                {
                    "key": key,
                    "title": str(cell.get("why", key)),
                    "total": int(cell.get("total", len(rows))),
                    "rows": rows,
                }
            )
        if sets:
            blamed.append(
                {"epoch": int(files[position]["epoch"]), "step": int(files[position]["global_step"]), "sets": sets}
            )
    return blamed


def _panels(scalars: dict[str, list[tuple[int, float]]], files: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The other monitors' panels (`lightning_stability.figures.report.DYNAMICS_PANELS`) whose tags the run holds,
    their steps placed on the checks' epoch axis (`step_to_epoch`)."""
    to_epoch = step_to_epoch(files, scalars)
    panels = []
    for panel, pattern in zip(DYNAMICS_PANELS, _PANEL_PATTERNS, strict=True):
        series = []
        for tag in sorted(tag for tag in scalars if pattern.fullmatch(tag)):
            match = pattern.fullmatch(tag)
            assert match is not None
            steps = np.array([step for step, _ in scalars[tag]], dtype=np.float64)
            epochs = to_epoch(steps) if steps.size else steps
            points = [
                [round(float(epoch), 4), _number(value)]
                for epoch, (_, value) in zip(epochs, scalars[tag], strict=True)
                if _number(value) is not None
            ]
            label = panel.series_label.format(*match.groups()) if match.groups() else panel.series_label
            series.append({"tag": tag, "label": label, "points": points})
        if series:
            panels.append(
                {
                    "title": panel.title,
                    "ylabel": panel.ylabel,
                    "reference": panel.reference,
                    "reference_label": panel.reference_label,
                    "log": panel.log_scale,
                    "series": series,
                }
            )
    return panels


def run_view(
    name: str,
    scalars: dict[str, list[tuple[int, float]]],
    texts: dict[str, list[tuple[int, str]]],
    margin_files: Sequence[dict[str, Any]] = (),
    num_samples: int | None = None,
) -> dict[str, Any]:
    """The view of the run ``name``: its checks from the scalars (else from the margin files), the verdict, the
    samples to blame at its events (from the margin files), the other monitors' panels and the last summary.

    Raises:
        ValueError: if neither the scalars nor the margin files hold a check of the `StabilityMonitor`.
    """
    checks = _checks_from_scalars(scalars)
    source = "TensorBoard events"
    if not checks and margin_files:
        checks, source = _checks_from_margin_files(margin_files), "margin files"
    if not checks:
        raise ValueError(
            f"the run {name!r} holds no check of the StabilityMonitor (no stability/accuracy, no margin file)"
        )
    if num_samples is None and margin_files:
        num_samples = int(margin_files[-1]["indices"].numel())
    summaries = _text_tag(texts, SUMMARY_TAG)
    stops = _text_tag(texts, STOP_TAG)
    stop_lines = stops[-1][1].strip().splitlines() if stops else []
    notes = []
    if not margin_files:
        notes.append("no margin files: the samples to blame need StabilityMonitor(save_margins=True)")
    return {
        "name": name,
        "source": source,
        "num_samples": num_samples,
        "checks": checks,
        "verdict": verdict(checks, num_samples, stop_lines[0] if stop_lines else None),
        "stop_detail": " ".join(line.strip() for line in stop_lines[1:]) or None,
        "summary": summaries[-1][1] if summaries else None,
        "blame": _blame(margin_files),
        "panels": _panels(scalars, margin_files),
        "notes": notes,
    }
