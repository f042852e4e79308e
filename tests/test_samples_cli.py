"""``lightning-stability samples`` and the per-sample pictures of ``report`` (docs/samples.md) on a small run of
sklearn's digits (flattened 8 × 8 images): the printed ranking against a hand sort of samples.csv, the same ranking
replayed from the margin files alone, and the data map and blame table files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import StabilityMonitor
from lightning_stability.cli import main

from .helpers import SMALL_GRID

DIGITS, LABELS = load_digits(return_X_y=True)


class Linear64(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("digits_run")
    x = torch.tensor(DIGITS[:150], dtype=torch.float32) / 16
    y = torch.tensor(LABELS[:150])
    y[:10] = (y[:10] + 1) % 10  # a few wrong labels, so that some samples stay wrong
    pl.seed_everything(0)
    monitor = StabilityMonitor(grid=SMALL_GRID, save_margins=directory, blame_size=5)
    trainer = pl.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor],
    )
    trainer.fit(Linear64(), DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True))
    return directory


def printed_indices(out: str) -> list[int]:
    lines = out.strip().splitlines()
    assert lines[1].split()[:3] == ["index", "target", "pred"]
    return [int(line.split()[0]) for line in lines[2:]]


def hand_ranking(csv_path: Path, column: str, most: bool, k: int) -> list[int]:
    with csv_path.open() as file:
        rows = list(csv.DictReader(file))
    key = lambda row: ((-1 if most else 1) * float(row[column]), int(row["index"]))
    return [int(row["index"]) for row in sorted(rows, key=key)[:k]]


@pytest.mark.parametrize(("column", "most"), [("aum", False), ("forgetting_events", True), ("confidence", False)])
def test_samples_prints_the_top_k_of_samples_csv(run_dir: Path, capsys, column: str, most: bool) -> None:
    assert main(["samples", str(run_dir), "-k", "7", "--by", column]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"[lightning-stability] 7 of 150 samples, ranked by {'most' if most else 'lowest'} {column}")
    assert printed_indices(out) == hand_ranking(run_dir / "samples.csv", column, most, 7)


def test_samples_replays_the_margin_files_without_samples_csv(run_dir: Path, tmp_path: Path, capsys) -> None:
    for path in run_dir.glob("margins_epoch=*.pt"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    assert main(["samples", str(tmp_path), "-k", "150"]) == 0
    assert printed_indices(capsys.readouterr().out) == hand_ranking(run_dir / "samples.csv", "aum", False, 150)


def fail(argv: list[str], capsys) -> str:
    """``main(argv)``'s stderr, after checking it exits with status 2, one line and no traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"lightning-stability {argv[0]}: error: ")
    assert "Traceback" not in err
    return err


def test_samples_without_files_says_what_to_do(tmp_path: Path, capsys) -> None:
    assert "save_margins=True" in fail(["samples", str(tmp_path)], capsys)


@pytest.mark.parametrize("subcommand", ["report", "samples"])
@pytest.mark.parametrize("folder", ["missing", "empty", "no_margin_files", "a_file"])
def test_errors_are_one_line_with_exit_status_2(tmp_path: Path, capsys, subcommand: str, folder: str) -> None:
    path = tmp_path / folder
    if folder == "empty":
        path.mkdir()
    elif folder == "no_margin_files":
        (path / "version_0").mkdir(parents=True)
        (path / "version_0" / "metrics.csv").write_text("epoch,loss\n0,1.0\n")
    elif folder == "a_file":
        path.write_text("not a folder")
    err = fail([subcommand, str(path)], capsys)
    assert str(path) in err
    wanted = {"missing": "does not exist", "a_file": "is not a directory"}.get(folder, "save_margins=True")
    assert wanted in err


def test_samples_k_must_be_positive(run_dir: Path, capsys) -> None:
    assert "-k must be a positive integer, got 0" in fail(["samples", str(run_dir), "-k", "0"], capsys)


@pytest.fixture
def two_runs(run_dir: Path, tmp_path: Path) -> Path:
    """A TensorBoard save_dir with two runs, ``version_0`` (all of run_dir's checks) and ``version_1`` (its first
    two), each with its margin files in ``margins/``."""
    files = sorted(run_dir.glob("margins_epoch=*.pt"))
    save_dir = tmp_path / "lightning_logs"
    for version, chosen in (("version_0", files), ("version_1", files[:2])):
        (save_dir / version / "margins").mkdir(parents=True)
        for path in chosen:
            (save_dir / version / "margins" / path.name).write_bytes(path.read_bytes())
    return save_dir


def test_samples_prints_one_table_per_run(two_runs: Path, run_dir: Path, capsys) -> None:
    assert main(["samples", str(two_runs), "-k", "150"]) == 0
    tables = capsys.readouterr().out.split("\n\n")
    assert len(tables) == 2
    for table, version in zip(tables, ("version_0", "version_1")):
        assert table.splitlines()[0].endswith(f", run {two_runs / version}:")
    # version_0 is run_dir's run alone, not merged with version_1's checks
    assert printed_indices(tables[0]) == hand_ranking(run_dir / "samples.csv", "aum", False, 150)
    assert printed_indices(tables[1]) != printed_indices(tables[0])


def test_report_draws_one_picture_per_run(two_runs: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", str(two_runs), "-o", str(tmp_path / "out" / "report.png")]) == 0
    out = capsys.readouterr().out
    for version in ("version_0", "version_1"):
        assert (
            f"[lightning-stability] report of {two_runs / version}: {tmp_path / 'out' / f'report_{version}.png'}" in out
        )
        for suffix in ("", "_data_map"):
            assert (tmp_path / "out" / f"report_{version}{suffix}.png").exists()
    assert not (tmp_path / "out" / "report.png").exists()


def test_report_draws_the_data_map_and_the_blame_table(run_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", str(run_dir), "-o", str(tmp_path / "report.png")]) == 0
    out = capsys.readouterr().out
    for name in ("report.png", "report_data_map.png", "report_blame.png"):
        assert str(tmp_path / name) in out
        with Image.open(tmp_path / name) as image:
            width, height = image.size
        assert width > 300 and height > 200, name
