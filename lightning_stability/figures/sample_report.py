"""The offline per-sample pictures of a run (``lightning-stability report`` / ``samples``, docs/samples.md).

* `run_dynamics` — a run's per-sample dynamics from its ``samples.csv`` or a replay of its margin files;
* `make_sample_report` — its data map (`lightning_stability.figures.data_map`) and the blame grid
  (`lightning_stability.figures.blame_grid`) of its last instability event.

matplotlib is imported by the figures' functions (optional, in the ``examples`` extra); nothing needs a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..check_events import instability_events
from ..dynamics.samples import SampleDynamics, SampleStatistics
from ..files import load_margin_files, load_samples_csv
from ..records import BLAME_SETS
from .blame_grid import BlameCell, blame_figure
from .data_map import data_map_figure

__all__ = ["make_sample_report", "run_dynamics"]


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


def make_sample_report(log_dir: str | Path, output: str | Path) -> list[Path]:
    """Draw the data map of a run into ``<output stem>_data_map.png`` and, if its margin files hold blame cells, the
    blame grid of its last instability event (else of its last check) into ``<output stem>_blame.png``; returns
    the paths written."""
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
    rows = []
    for key, title in BLAME_SETS.items():
        cells = check["blame_cells"].get(key)
        if cells:
            row = [
                BlameCell(index=int(i), target=int(t), predicted=int(p), picture=picture)
                for i, t, p, picture in zip(
                    cells["index"], cells["target"], cells["predicted"], cells["pictures"], strict=True
                )
            ]
            rows.append((f"{title} ({check['blame'][key].numel()})", row))
    when = "before training" if check["epoch"] < 0 else f"epoch {check['epoch']}"
    blame = output.with_name(f"{output.stem}_blame.png")
    blame_figure(rows, f"{when}: samples to blame (label → prediction)").savefig(blame, dpi=90)
    return [*written, blame]
