"""What the blame grid of an instability event costs (docs/samples.md), composed as pixels without matplotlib.

Times, median (and range) of ``--runs`` runs each:

* ``grid``: `blame_figure` of 3 sets of 16 cells of 28 × 28 pictures (composed, not encoded);
* ``grid + PNG``: the same and its PNG encoding (what the CSV logger and MLflow write; TensorBoard encodes too);
* ``grid from the dataset``: `BlamePictures.cells` (reading the 48 samples from a 3,180-sample dataset, labels,
  predictions and margins from the margin pass) and `blame_figure`, as an event pays it;
* ``table``: the table of the same 48 samples for inputs that are no pictures (16 tokens each).

and, once each (cold: the first call, importing matplotlib; then warm), the matplotlib grid of an earlier
revision (``--old-rev``, default the last one that drew it with matplotlib) on the same cells, rendered as
`lightning_stability.figures.render.render` did.

Run: ``python benchmarks/blame_grid.py [--runs 20] [--old-rev REV] [--save DIR]`` (``--save`` writes the grid and
the table as PNGs).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch.utils.data import TensorDataset

from lightning_stability.callbacks.blame_pictures import BlamePictures
from lightning_stability.figures.blame_grid import BlameCell, blame_figure
from lightning_stability.records import BlameSets, MarginPass

OLD_REV = "207512d"
"""The last revision whose blame grid was a matplotlib figure."""

N = 3_180
TITLE = "instability at epoch 7: samples to blame (label -> prediction)"


def timed(work: Callable[[], Any], runs: int) -> tuple[float, float, float]:
    """Median, fastest and slowest of ``runs`` wall-clock timings of ``work()`` (after one warm-up call)."""
    work()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def setup() -> tuple[BlamePictures, TensorDataset, BlameSets, MarginPass]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(N, 1, 28, 28, generator=generator)
    targets = torch.randint(0, 10, (N,), generator=generator)
    predicted = torch.where(torch.rand(N, generator=generator) < 0.3, (targets + 1) % 10, targets)
    margins = torch.randn(N, generator=generator, dtype=torch.float64)
    margin_pass = MarginPass(torch.arange(N), targets, margins, margins.abs(), predicted, num_classes=10)
    order = torch.argsort(margins)
    blame = BlameSets(torch.arange(0, 41 * 7, 7), order[:41], order[41:60], torch.tensor([], dtype=torch.long))
    return BlamePictures(blame_size=16, to_image=None), TensorDataset(images, targets), blame, margin_pass


def old_module(rev: str) -> Any:
    """The blame_grid module of ``rev``, imported from a temporary file."""
    source = subprocess.run(
        ["git", "show", f"{rev}:lightning_stability/figures/blame_grid.py"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_blame_grid.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_blame_grid", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_blame_grid"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--old-rev", default=OLD_REV)
    parser.add_argument("--save", type=Path, default=None)
    args = parser.parse_args()

    pictures, dataset, blame, margin_pass = setup()
    trainer = SimpleNamespace(is_global_zero=True)
    rows = pictures.cells(trainer, dataset, blame, margin_pass)
    rows = [(name, cells) for name, cells in rows if cells]
    assert [len(cells) for _, cells in rows] == [16, 16, 16], [len(cells) for _, cells in rows]
    tokens = [
        (name, [BlameCell(c.index, c.target, c.predicted, None, c.margin, c.why) for c in cs]) for name, cs in rows
    ]

    results = {
        "grid, 16 x 3 cells of 28 x 28": timed(lambda: blame_figure(rows, TITLE), args.runs),
        "grid + PNG": timed(lambda: blame_figure(rows, TITLE).png(), args.runs),
        f"grid from the dataset (N = {N:,})": timed(
            lambda: blame_figure(pictures.cells(trainer, dataset, blame, margin_pass), TITLE), args.runs
        ),
        "table, 16 x 3 rows": timed(lambda: blame_figure(tokens, TITLE), args.runs),
    }
    figure, table = blame_figure(rows, TITLE), blame_figure(tokens, TITLE)
    print(f"median of {args.runs} runs [s] (fastest-slowest); goal <= 0.2 s")
    for name, (median, low, high) in results.items():
        print(f"  {name:<36} {median:.4f} ({low:.4f}-{high:.4f})")
    print(
        f"  grid {figure.rgb.shape[1]} x {figure.rgb.shape[0]} px, table {table.rgb.shape[1]} x {table.rgb.shape[0]} px"
    )

    old = old_module(args.old_rev)
    from lightning_stability.figures.render import render

    old_rows = [(name, [old.BlameCell(c.index, c.target, c.predicted, c.picture) for c in cs]) for name, cs in rows]
    for when in ("cold", "warm"):
        start = time.perf_counter()
        drawn = render(old.blame_figure(old_rows, TITLE))
        print(
            f"  matplotlib grid of {args.old_rev} ({when}): {time.perf_counter() - start:.4f} s, "
            f"{drawn.rgb.shape[1]} x {drawn.rgb.shape[0]} px"
        )
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        (args.save / "blame_grid.png").write_bytes(figure.png())
        (args.save / "blame_table.png").write_bytes(table.png())
        (args.save / "blame_grid_matplotlib.png").write_bytes(drawn.png())


if __name__ == "__main__":
    main()
