"""Where a run's view comes from: TensorBoard's data provider (the tab, and the page through an offline provider
over the same event files) and the run's margin files, found among the runs TensorBoard knows.

* `run_directories` — the run names TensorBoard gives the directories under a log directory, each with its
  directory, found by scanning that log directory (a name from a request is looked up here, never joined into a
  path);
* `read_run` — one run's scalars and texts through a data provider (`lightning_stability.stability_tab.view`
  reads them);
* `offline_provider` — a data provider over a log directory's event files, without a TensorBoard server;
* `run_margin_files` — the margin files of a run's directory, if it holds any.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..run_folders import MARGIN_PATTERN
from .view import STOP_TAG, SUMMARY_TAG, run_view, wanted_scalar

__all__ = ["CONSTANTS_TAG", "offline_provider", "read_run", "run_directories", "run_margin_files", "view_of_run"]

CONSTANTS_TAG = "stability/constants"
_TEXT_TAGS = (SUMMARY_TAG, STOP_TAG, CONSTANTS_TAG)
_NUM_SAMPLES = re.compile(r"\|\s*`stability/num_samples`\s*\|\s*(\d+)\s*\|")


def run_directories(log_dir: str | Path) -> dict[str, Path]:
    """``{run name: directory}`` of every directory under ``log_dir`` (itself included, named ``.``) that holds a
    TensorBoard event file, named as TensorBoard names runs (the path relative to ``log_dir``); a directory that
    resolves outside ``log_dir`` (a symbolic link out of it) is left out."""
    root = Path(log_dir).resolve()
    found = {}
    for path in root.rglob("events.out.tfevents.*"):
        directory = path.parent.resolve()
        if path.is_file() and directory.is_relative_to(root):
            found[path.parent.relative_to(root).as_posix()] = directory
    return dict(sorted(found.items()))


def run_margin_files(directory: Path, root: Path) -> list[dict[str, Any]]:
    """The margin files in ``directory``'s ``margins`` folder, else in ``directory`` itself (not deeper: a nested run
    is a run of its own), in check order; a file that resolves outside ``root`` is not read. ``[]`` when there are
    none."""
    root = root.resolve()
    for folder in (directory / "margins", directory):
        paths = sorted(path for path in folder.glob(MARGIN_PATTERN) if path.resolve().is_relative_to(root))
        if paths:
            checks = [torch.load(path, map_location="cpu", weights_only=True) for path in paths]
            return sorted(checks, key=lambda check: (check["global_step"], check["epoch"]))
    return []


def _text(value: Any) -> str:
    """A text summary's tensor (a numpy array of bytes, one element for the monitor's texts) as one string."""
    items = value.flatten().tolist() if hasattr(value, "flatten") else [value]
    return "\n".join(item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in items)


def read_run(provider: Any, ctx: Any, experiment_id: str, run: str) -> tuple[dict, dict, int | None]:
    """The run's scalars the view reads (``{tag: [(step, value), ...]}``, a step logged twice keeps its last
    value), its texts (``{tag: [(step, text), ...]}``) and the number of certified samples from its constants
    (``None`` if it has none)."""
    from tensorboard.data import provider as data  # type: ignore[import-untyped]

    listed = provider.list_scalars(
        ctx, experiment_id=experiment_id, plugin_name="scalars", run_tag_filter=data.RunTagFilter(runs=[run])
    ).get(run, {})
    tags = [tag for tag in listed if wanted_scalar(tag)]
    scalars: dict[str, list[tuple[int, float]]] = {}
    if tags:
        read = provider.read_scalars(
            ctx,
            experiment_id=experiment_id,
            plugin_name="scalars",
            downsample=1_000_000,
            run_tag_filter=data.RunTagFilter(runs=[run], tags=tags),
        ).get(run, {})
        for tag, points in read.items():
            scalars[tag] = sorted({int(point.step): float(point.value) for point in points}.items())
    listed = provider.list_tensors(
        ctx, experiment_id=experiment_id, plugin_name="text", run_tag_filter=data.RunTagFilter(runs=[run])
    ).get(run, {})
    tags = [tag for tag in listed if tag.removesuffix("/text_summary") in _TEXT_TAGS]
    texts: dict[str, list[tuple[int, str]]] = {}
    if tags:
        read = provider.read_tensors(
            ctx,
            experiment_id=experiment_id,
            plugin_name="text",
            downsample=1_000,
            run_tag_filter=data.RunTagFilter(runs=[run], tags=tags),
        ).get(run, {})
        for tag, points in read.items():
            texts[tag.removesuffix("/text_summary")] = [(int(point.step), _text(point.numpy)) for point in points]
    found = [_NUM_SAMPLES.search(text) for _, text in texts.get(CONSTANTS_TAG, [])]
    numbers = [int(match.group(1)) for match in found if match]
    return scalars, texts, numbers[-1] if numbers else None


def offline_provider(log_dir: str | Path) -> Any:
    """TensorBoard's data provider over the event files under ``log_dir``, read once (every scalar and text kept)."""
    from tensorboard.backend.event_processing import data_provider  # type: ignore[import-untyped]
    from tensorboard.backend.event_processing import plugin_event_multiplexer as multiplexer

    events = multiplexer.EventMultiplexer(size_guidance={"scalars": 0, "tensors": 0}, tensor_size_guidance={"text": 0})
    events.AddRunsFromDirectory(str(log_dir))
    events.Reload()
    return data_provider.MultiplexerDataProvider(events, str(log_dir))


def view_of_run(provider: Any, ctx: Any, experiment_id: str, run: str, directory: Path | None, root: Path) -> dict:
    """The view (`lightning_stability.stability_tab.view.run_view`) of the run TensorBoard names ``run``: its
    events through ``provider``, its margin files from ``directory`` (``None``: not on this machine)."""
    scalars, texts, num_samples = read_run(provider, ctx, experiment_id, run)
    files = run_margin_files(directory, root) if directory is not None else []
    return run_view(run, scalars, texts, files, num_samples)
