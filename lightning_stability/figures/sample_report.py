"""The offline per-sample pictures of a run (``lightning-stability report`` / ``samples``, docs/samples.md).

* `run_dynamics` — a run's per-sample dynamics from its ``samples.csv`` or a replay of its margin files;
* `make_sample_report` — its data map (`lightning_stability.figures.data_map`) and the blame table of its last
  instability event;
* `blamed_rows`, `blame_table_figure` — that table: one row per blamed sample of a margin file (index, label,
  prediction, margin, why blamed), each cut set its ``blame_size`` smallest margins, smallest first, as the file
  holds them. Margin files hold results, not inputs, so the offline report shows no pictures
  (the live ``stability/blame`` grid, drawn from the dataset at the check, does); the ``pictures`` that files of
  earlier versions hold are ignored.

matplotlib is imported by the figures' functions (optional, in the ``examples`` extra); nothing needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..check_events import instability_events
from ..dynamics.samples import SampleDynamics, SampleStatistics
from ..files import load_margin_files, load_samples_csv
from ..records import BLAME_SETS, CAUSES_FIRST, SMALLEST_MARGINS
from .blame_grid import row_title
from .data_map import data_map_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["BlamedSample", "blame_table_figure", "blamed_rows", "make_sample_report", "run_dynamics"]

COLUMNS = ("index", "label", "prediction", "margin", "why blamed")
ROW_INCHES = 0.26
"""The height of one table row; the figure's height follows the number of rows."""


@dataclass(frozen=True)
class BlamedSample:
    """One row of the blame table: a blamed sample's index, label, prediction and margin, and why it is blamed
    (its set's title, `lightning_stability.records.BLAME_SETS`)."""

    index: int
    target: int
    predicted: int
    margin: float
    why: str


def run_dynamics(log_dir: str | Path) -> SampleDynamics:
    """A run's per-sample dynamics: its ``samples.csv`` (searched under ``log_dir``), else a replay of its margin
    files through `lightning_stability.dynamics.SampleStatistics`.

    Raises:
        FileNotFoundError: if ``log_dir`` holds neither, saying which monitor options write them.
        ValueError: if the margin files predate the predicted classes (written by an older version).
    """
    try:
        return load_samples_csv(log_dir)
    except FileNotFoundError:
        pass
    try:
        checks = load_margin_files(log_dir)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"neither samples.csv nor margin files under {log_dir}; train with StabilityMonitor(save_margins=True) "
            "(or save_samples=True) and pass the run's log directory."
        ) from None
    if any("predicted" not in check for check in checks):
        raise ValueError(f"the margin files under {log_dir} have no predicted classes; no samples.csv either.")
    statistics = SampleStatistics()
    for check in checks:
        statistics.update(check["indices"], check["targets"], check["margins"], check["losses"], check["predicted"])
    return statistics.result()


def _blame_check(checks: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The last instability event's check that holds blame cells, else the last check that does."""
    events, _ = instability_events(checks)
    with_cells = [i for i, check in enumerate(checks) if check.get("blame_cells")]
    chosen = [i for i in with_cells if i in events] or with_cells
    return checks[chosen[-1]] if chosen else None


def _margin_of(check: dict[str, Any], index: int) -> float:
    """The check's margin of sample ``index`` (NaN if it has none): for files that predate ``blame_cells``'
    ``margin``."""
    indices = check["indices"]
    position = int(torch.searchsorted(indices, torch.tensor(index)))
    if position < indices.numel() and int(indices[position]) == index:
        return float(check["margins"][position])
    return math.nan


def blamed_rows(check: dict[str, Any]) -> tuple[list[BlamedSample], list[str]]:
    """The blame table of one margin file's check: its ``blame_cells`` as rows, causes first (`CAUSES_FIRST`) and in the
    file's order within a set (smallest margin first), and a note per set the file cut to ``blame_size``
    (`lightning_stability.figures.blame_grid.row_title`: ``"<title>: 16 of 1,227 shown: the 16 smallest
    margins"``). Files of earlier versions are read too: cells without ``picked`` (`SMALLEST_MARGINS`) were a set's
    first indices, so their note says only ``"<title>: 16 of 1,227 shown"`` (but for ``worst``, whose first
    indices are its smallest margins); cells with ``pictures`` and without ``margin``/``why``/``total`` have their
    pictures ignored and their margins looked up in the check's ``margins``."""
    rows: list[BlamedSample] = []
    notes: list[str] = []
    for key in CAUSES_FIRST:
        title = BLAME_SETS[key]
        cells = check.get("blame_cells", {}).get(key)
        if not cells:
            continue
        index = [int(i) for i in cells["index"]]
        margins = [float(m) for m in cells["margin"]] if "margin" in cells else [_margin_of(check, i) for i in index]
        why = str(cells.get("why", title))
        for i, target, predicted, margin in zip(index, cells["target"], cells["predicted"], margins, strict=True):
            rows.append(BlamedSample(i, int(target), int(predicted), margin, why))
        blame = check.get("blame", {}).get(key)
        total = int(cells["total"]) if "total" in cells else (blame.numel() if blame is not None else len(index))
        if total > len(index):
            smallest = cells.get("picked") == SMALLEST_MARGINS or key == "worst"  # worst: always smallest first
            notes.append(row_title(why, len(index), total, smallest_margins=smallest))
    return rows, notes


def blame_table_figure(rows: Sequence[BlamedSample], notes: Sequence[str], title: str) -> Figure:
    """The blame table: a header and one row per blamed sample (index, label, prediction, margin, why blamed; red
    when the prediction is wrong), then ``notes`` (the cut sets); its height follows the number of rows."""
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

    title_inches, note_inches = 0.5, 0.22 * len(notes) + (0.15 if notes else 0.0)
    table_inches = ROW_INCHES * (len(rows) + 1) if rows else 0.6
    height = title_inches + table_inches + note_inches + 0.1
    figure = Figure(figsize=(7.5, height), dpi=80)
    figure.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    if not rows:
        figure.text(0.5, 0.5, "no sample to blame", ha="center", va="center")
        return figure
    axes = figure.add_axes((0.02, (note_inches + 0.1) / height, 0.96, table_inches / height))
    axes.set_axis_off()
    text = [
        [
            f"#{row.index}",
            str(row.target),
            str(row.predicted),
            "—" if math.isnan(row.margin) else f"{row.margin:.4g}",
            row.why,
        ]
        for row in rows
    ]
    table = axes.table(
        cellText=text,
        colLabels=list(COLUMNS),
        colWidths=[0.1, 0.09, 0.12, 0.12, 0.57],
        cellLoc="left",
        bbox=Bbox.from_bounds(0, 0, 1, 1),
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for number in range(len(rows) + 1):
        table[number, len(COLUMNS) - 1].PAD = 0.02  # the default pads a tenth of the wide column's width
    for column in range(len(COLUMNS)):
        table[0, column].set_text_props(fontweight="bold")
        table[0, column].set_facecolor("#e8e8e8")
    for number, row in enumerate(rows, start=1):
        if row.target != row.predicted:
            for column in range(len(COLUMNS) - 1):
                table[number, column].get_text().set_color("red")
    for line, note in enumerate(notes):
        figure.text(0.02, (note_inches - 0.22 * (line + 1) + 0.1) / height, note, fontsize=9, va="bottom")
    return figure


def make_sample_report(log_dir: str | Path, output: str | Path) -> list[Path]:
    """Draw the data map of a run into ``<output stem>_data_map.png`` and, if its margin files hold blame cells, the
    blame table (`blame_table_figure`) of its last instability event (else of its last check) into
    ``<output stem>_blame.png``; returns the paths written."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    dynamics = run_dynamics(log_dir)
    data_map = output.with_name(f"{output.stem}_data_map.png")
    data_map_figure(dynamics, title=f"data map of {Path(log_dir).name}").savefig(data_map, dpi=90)
    written = [data_map]
    try:
        checks = load_margin_files(log_dir)
    except FileNotFoundError:
        return written
    check = _blame_check(checks)
    if check is None:
        return written
    rows, notes = blamed_rows(check)
    when = "before training" if check["epoch"] < 0 else f"epoch {check['epoch']}"
    blame = output.with_name(f"{output.stem}_blame.png")
    blame_table_figure(rows, notes, f"{when}: samples to blame").savefig(blame, dpi=90)
    return [*written, blame]
