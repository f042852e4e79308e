"""lightning_stability.files: margin files and data-check files round trip exactly, in check order, written
atomically (no temporary file left behind, an interrupted write keeps the previous file), and a missing file says
how to produce it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lightning_stability import theory
from lightning_stability.data_check import data_check_table
from lightning_stability.files import (
    DATA_CHECK_FILE,
    DATA_CHECK_TABLE,
    load_data_check,
    load_margin_files,
    margin_file_name,
    save_data_check,
    save_margin_file,
)
from lightning_stability.records import MarginPass

from .helpers import NUM_CLASSES, SMALL_GRID, make_data


def same_numbers(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal dicts of floats, NaN equal to NaN."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def check(seed: int, num_samples: int = 50) -> tuple[MarginPass, theory.StabilityReport]:
    """A margin pass over random logits (its own values for every seed) and its report."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_samples, NUM_CLASSES, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, NUM_CLASSES, (num_samples,), generator=generator)
    margins = theory.margins(logits, targets)
    losses = theory.per_sample_cross_entropy(logits, targets)
    margin_pass = MarginPass(torch.arange(num_samples), targets, margins, losses, logits.argmax(dim=1), NUM_CLASSES)
    report = theory.certify(margins, NUM_CLASSES, loss=float(losses.mean()), **SMALL_GRID)
    return margin_pass, report


def test_margin_file_names() -> None:
    assert margin_file_name(-1, 0) == "margins_epoch=start_step=00000000.pt"
    assert margin_file_name(12, 345) == "margins_epoch=0012_step=00000345.pt"


def test_margin_files_round_trip_exactly_in_check_order(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    # (epoch, global_step, directory), saved out of order; epoch 0 at step 0 ties with the start check on the step,
    # and its file name sorts before the start check's: the order must come from the steps, then the epochs
    saved = [
        (1, 26, log_dir / "margins"),
        (0, 0, log_dir / "margins"),
        (2, 39, log_dir / "resumed" / "margins"),  # found recursively
        (-1, 0, log_dir / "margins"),
        (0, 13, log_dir / "margins"),
    ]
    checks = {}
    for seed, (epoch, step, directory) in enumerate(saved):
        margin_pass, report = check(seed)
        path = save_margin_file(directory, epoch, step, margin_pass, report)
        assert path == directory / margin_file_name(epoch, step) and path.is_file()
        checks[(epoch, step)] = (margin_pass, report)

    loaded = load_margin_files(log_dir)
    assert [(c["epoch"], c["global_step"]) for c in loaded] == [(-1, 0), (0, 0), (0, 13), (1, 26), (2, 39)]
    for content in loaded:
        margin_pass, report = checks[(content["epoch"], content["global_step"])]
        for key in ("indices", "targets", "margins", "losses"):
            expected = getattr(margin_pass, key)
            assert content[key].dtype == expected.dtype and torch.equal(content[key], expected), key
        assert content["num_classes"] == NUM_CLASSES
        assert same_numbers(content["report"], report.to_dict())
    # the files and nothing else: no temporary file left behind
    assert sorted(p.name for p in (log_dir / "margins").iterdir()) == sorted(
        margin_file_name(epoch, step) for epoch, step, directory in saved if directory == log_dir / "margins"
    )
    assert [p.name for p in (log_dir / "resumed" / "margins").iterdir()] == [margin_file_name(2, 39)]


def test_an_interrupted_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:
    first, first_report = check(0)
    save_margin_file(tmp_path, 3, 40, first, first_report)
    second, second_report = check(1)
    assert not torch.equal(first.margins, second.margins)

    def interrupted(content, file) -> None:
        file.write(b"half a file")
        raise OSError("no space left on device")

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(OSError, match="no space left"):
        save_margin_file(tmp_path, 3, 40, second, second_report)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [margin_file_name(3, 40)]
    (content,) = load_margin_files(tmp_path)
    assert torch.equal(content["margins"], first.margins)


def test_no_margin_files_name_the_fix(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no margin files .*StabilityMonitor\(save_margins=True\)") as error:
        load_margin_files(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(error.value)


def test_data_check_files_round_trip(tmp_path: Path) -> None:
    x, _ = make_data(300)
    x[:8] = 9.0 + 0.01 * torch.randn(8, x.shape[1], generator=torch.Generator().manual_seed(0))  # a small cluster
    report = theory.data_clusters(x, n_random=8, n_principal=2, min_cluster_mass=0.01)
    assert report.witness is not None  # a file with every field filled
    table = data_check_table(report)

    data, text = save_data_check(tmp_path, report, table)
    assert (data, text) == (tmp_path / DATA_CHECK_FILE, tmp_path / DATA_CHECK_TABLE)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DATA_CHECK_FILE, DATA_CHECK_TABLE])
    assert text.read_text() == table + "\n"

    for source in (tmp_path, data):  # the directory or the file
        content = load_data_check(source)
        assert same_numbers(content["summary"], report.to_dict())
        for key in ("witness_indices", "worst_direction", "directions", "lower", "upper"):
            expected = getattr(report, key)
            assert content[key].dtype == expected.dtype and torch.equal(content[key], expected), key
        assert content["witness"] == report.witness
        assert content["worst_direction_kind"] == report.worst_direction_kind
        assert content["kinds"] == list(report.kinds)


def test_no_data_check_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no data-check file .*StabilityMonitor\(check_data=True\)"):
        load_data_check(tmp_path)
    with pytest.raises(FileNotFoundError, match=DATA_CHECK_FILE):
        load_data_check(tmp_path / DATA_CHECK_FILE)
