"""lightning_stability.figures.sample_report: a run's per-sample dynamics and its data map and blame table files."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
import torch

import lightning_stability.figures.sample_report as sample_report
from lightning_stability import theory
from lightning_stability.callbacks.blame_pictures import blamed_samples
from lightning_stability.figures.sample_report import (
    ROW_INCHES,
    BlamedSample,
    blame_table_figure,
    make_sample_report,
    run_dynamics,
)
from lightning_stability.files import margin_file_name, save_margin_file
from lightning_stability.records import BlameSets, MarginPass

pytest.importorskip("matplotlib")

LOG2, LOG4 = math.log(2.0), math.log(4.0)
CUT_WORST = "worst margins: 2 of 3 shown: the 2 smallest margins"


def report(accuracy: float, loss: float) -> theory.StabilityReport:
    a = theory.TheoremAFloor(0.0, 0.1, 0.2, 0.125, 1.0, 0.3, 2.0, 0.3)
    b = theory.TheoremBFloor(0.0, 0.1, 0.2, 0.125, 2.0, 0.125, 0.00625, 0.05, 1.5, 1.6, 0.4)
    return theory.StabilityReport(3, 2, accuracy, loss, 0.1, 0.5, 0.0, 0.0, -1.0, (0.0,), (0.5,), (0.5,), a, b)


BLAME = BlameSets(
    forgotten=torch.tensor([1]),
    worst=torch.tensor([1, 2, 0]),  # smallest margin first
    witness=torch.zeros(0, dtype=torch.long),
    data_cluster=torch.zeros(0, dtype=torch.long),
)


def old_cells(indices: list[int]) -> dict:
    """``blame_cells`` of one set as earlier versions wrote them: with the drawn inputs, without margins."""
    return {
        "index": torch.tensor(indices, dtype=torch.long),
        "target": torch.zeros(len(indices), dtype=torch.long),
        "predicted": torch.tensor([1 if i == 1 else 0 for i in indices], dtype=torch.long),
        "pictures": [torch.full((2, 2), float(i)) for i in indices],
    }


def write_check(
    directory: Path, epoch: int, losses: list[float], accuracy: float, loss: float, blame: str | None
) -> None:
    """One check of samples 0, 1, 2 (class 0; sample 1 wrong) at global step 10·(epoch + 1), with the blame sets
    `BLAME`: ``blame="new"``: with blame cells as the monitor writes them (two samples a set), ``"old"``: as
    earlier versions wrote them (pictures, data_cluster without cells), ``None``: without blame."""
    values = torch.tensor(losses, dtype=torch.float64)
    margins = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    margin_pass = MarginPass(
        torch.arange(3), torch.zeros(3, dtype=torch.long), margins, values, (margins < 0).long(), 2
    )
    extra = None
    if blame == "new":
        extra = {"blame": BLAME.as_dict(), "blame_cells": blamed_samples(BLAME, margin_pass, 2)}
    elif blame == "old":
        cells = {"forgotten": old_cells([1]), "worst": old_cells([1, 2]), "witness": old_cells([])}
        extra = {"blame": BLAME.as_dict(), "blame_cells": cells}
    save_margin_file(directory, epoch, 10 * (epoch + 1), margin_pass, report(accuracy, loss), extra)


def make_run(directory: Path, blame_at: tuple[int, ...], blame: str = "new") -> Path:
    # (loss, accuracy): epoch 1 lowers both (an instability event), epoch 2 lowers the accuracy as the loss rises
    # probabilities exp(−ℓ) of samples 0, 1, 2: epoch 0: 1/2, 1/2, 1/4; epoch 1: 1/4, 1/2, 1/2; epoch 2: 1/2, 1/2, 1/4
    write_check(directory, 0, [LOG2, LOG2, LOG4], 1.0, 0.5, blame if 0 in blame_at else None)
    write_check(directory, 1, [LOG4, LOG2, LOG2], 2 / 3, 0.4, blame if 1 in blame_at else None)
    write_check(directory, 2, [LOG2, LOG2, LOG4], 1 / 3, 0.45, blame if 2 in blame_at else None)
    return directory


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_run_dynamics_replays_the_margin_files(tmp_path: Path) -> None:
    dynamics = run_dynamics(make_run(tmp_path / "run", ()))
    assert dynamics.index.tolist() == [0, 1, 2]
    # mean and population standard deviation of exp(−ℓ) over the three checks
    assert dynamics.confidence.tolist() == pytest.approx([5 / 12, 1 / 2, 1 / 3])
    assert dynamics.variability.tolist() == pytest.approx([math.sqrt(2) / 12, 0.0, math.sqrt(2) / 12])
    assert dynamics.correctness.tolist() == pytest.approx([1.0, 0.0, 1.0])


def test_run_dynamics_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"save_margins=True"):
        run_dynamics(tmp_path)
    content = {"epoch": 0, "global_step": 10, "indices": torch.arange(2), "targets": torch.zeros(2, dtype=torch.long)}
    torch.save(
        {**content, "margins": torch.ones(2), "losses": torch.ones(2), "report": {}}, tmp_path / margin_file_name(0, 10)
    )
    with pytest.raises(ValueError, match="no predicted classes"):
        run_dynamics(tmp_path)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """The figures make_sample_report draws, with the arguments they were drawn from."""
    seen: dict[str, list] = {"data_map": [], "blame": []}
    data_map, blame = sample_report.data_map_figure, sample_report.blame_table_figure

    def draw_data_map(dynamics, title):
        seen["data_map"].append((dynamics, title, figure := data_map(dynamics, title=title)))
        return figure

    def draw_blame(rows, notes, title):
        seen["blame"].append((rows, notes, title, figure := blame(rows, notes, title)))
        return figure

    monkeypatch.setattr(sample_report, "data_map_figure", draw_data_map)
    monkeypatch.setattr(sample_report, "blame_table_figure", draw_blame)
    return seen


def table_text(figure) -> list[list[str]]:
    """The blame table's cells, row by row (the header first)."""
    (table,) = figure.axes[0].tables
    cells = table.get_celld()
    rows = 1 + max(r for r, _ in cells)
    columns = 1 + max(c for _, c in cells)
    return [[cells[r, c].get_text().get_text() for c in range(columns)] for r in range(rows)]


def test_the_blame_table_is_of_the_last_instability_event(tmp_path: Path, drawn: dict[str, list]) -> None:
    run = make_run(tmp_path / "my_run", blame_at=(0, 1, 2))  # epoch 2 is later, epoch 1 is the event
    written = make_sample_report(run, tmp_path / "out" / "report.png")
    assert written == [tmp_path / "out" / "report_data_map.png", tmp_path / "out" / "report_blame.png"]
    assert png_size(written[0]) == (504, 396)  # 5.6 × 4.4 inches at 90 dpi

    ((dynamics, title, figure),) = drawn["data_map"]
    assert title == "data map of my_run" and figure.axes[0].get_title() == "data map of my_run: 3 samples"
    dots = figure.axes[0].collections[0].get_offsets()
    # (variability, confidence) per sample, from the probabilities above
    expected = [math.sqrt(2) / 12, 5 / 12, 0.0, 1 / 2, math.sqrt(2) / 12, 1 / 3]
    assert dots.shape == (3, 2) and dots.reshape(-1).tolist() == pytest.approx(expected)

    ((rows, notes, title, figure),) = drawn["blame"]
    assert title == "epoch 1: samples to blame"
    # one row per blamed sample, causes first (records.CAUSES_FIRST); the worst set was cut to two of its three
    assert table_text(figure) == [
        ["index", "label", "prediction", "margin", "why blamed"],
        ["#1", "0", "1", "-1", "worst margins"],
        ["#2", "0", "0", "0.5", "worst margins"],
        ["#1", "0", "1", "-1", "forgotten since the previous check"],
    ]
    assert notes == [CUT_WORST]
    assert [t.get_text() for t in figure.texts] == ["epoch 1: samples to blame", CUT_WORST]
    (table,) = figure.axes[0].tables
    assert table[1, 2].get_text().get_color() == "red" and table[2, 2].get_text().get_color() == "black"
    width, height = png_size(written[1])
    assert width == 675 and 100 < height < 300  # 7.5 inches wide, a few rows high


def test_an_old_margin_file_with_pictures_gives_the_same_table(tmp_path: Path, drawn: dict[str, list]) -> None:
    """Files of earlier versions hold the drawn inputs and no margins: the pictures are ignored, the margins are
    the check's own."""
    make_sample_report(make_run(tmp_path / "new", blame_at=(1,)), tmp_path / "new.png")
    make_sample_report(make_run(tmp_path / "old", blame_at=(1,), blame="old"), tmp_path / "old.png")
    (new_rows, new_notes, _, new_figure), (old_rows, old_notes, _, old_figure) = drawn["blame"]
    assert old_rows == new_rows and old_notes == new_notes == [CUT_WORST]  # worst: smallest first in both
    assert table_text(old_figure) == table_text(new_figure)
    assert all(isinstance(row, BlamedSample) for row in old_rows)


def test_the_table_grows_with_its_rows(tmp_path: Path) -> None:
    rows = [BlamedSample(k, k % 3, (k + 1) % 3, -0.5 * k, "worst margins") for k in range(40)]
    short, tall = (
        blame_table_figure(rows[:4], [], "t"),
        blame_table_figure(rows, ["worst margins: 40 of 99 shown"], "t"),
    )
    assert tall.get_figheight() - short.get_figheight() == pytest.approx(36 * ROW_INCHES + 0.37)
    assert len(table_text(tall)) == 41
    assert blame_table_figure([], [], "t").texts[-1].get_text() == "no sample to blame"


def test_without_an_event_with_cells_the_last_check_with_cells_is_drawn(tmp_path: Path, drawn: dict) -> None:
    make_sample_report(make_run(tmp_path / "run", blame_at=(0, 2)), tmp_path / "report.png")
    ((_, _, title, _),) = drawn["blame"]
    assert title == "epoch 2: samples to blame"


def test_without_blame_cells_only_the_data_map_is_written(tmp_path: Path, drawn: dict) -> None:
    written = make_sample_report(make_run(tmp_path / "run", blame_at=()), tmp_path / "report.png")
    assert written == [tmp_path / "report_data_map.png"] and written[0].is_file()
    assert drawn["blame"] == [] and not (tmp_path / "report_blame.png").exists()


def hundred_class_check(directory: Path, old: bool) -> tuple[MarginPass, torch.Tensor]:
    """A margin file of 5,000 samples of 100 random classes (margins rounded to 0.1: many equal) whose 1,227
    forgotten samples are cut to 16 cells: as the monitor writes them now, or (``old``) as earlier versions did,
    the set's first 16 indices and no ``picked``."""
    generator = torch.Generator().manual_seed(1)
    n = 5000
    indices = 2 * torch.arange(n)
    targets = torch.randint(0, 100, (n,), generator=generator)
    margins = (torch.randn(n, generator=generator, dtype=torch.float64) * 10).round() / 10
    many = MarginPass(indices, targets, margins, torch.nn.functional.softplus(-margins), targets, 100)
    forgotten = torch.sort(indices[torch.randperm(n, generator=generator)[:1227]]).values
    empty = torch.zeros(0, dtype=torch.long)
    blame = BlameSets(forgotten, empty, empty, empty)
    cells = blamed_samples(blame, many, 16)
    if old:
        positions = torch.searchsorted(indices, forgotten[:16])
        cells["forgotten"] = {
            "index": forgotten[:16],
            "target": targets[positions],
            "predicted": targets[positions],
            "margin": margins[positions],
            "why": "forgotten since the previous check",
            "total": 1227,
        }
    extra = {"blame": blame.as_dict(), "blame_cells": cells}
    save_margin_file(directory, 0, 10, many, report(0.5, 0.5), extra)
    return many, forgotten


def test_the_report_of_a_100_class_event_tables_the_16_smallest_margins(tmp_path: Path, drawn: dict) -> None:
    many, forgotten = hundred_class_check(tmp_path / "run", old=False)
    make_sample_report(tmp_path / "run", tmp_path / "report.png")
    ((rows, notes, _, figure),) = drawn["blame"]
    margin_of = dict(zip(many.indices.tolist(), many.margins.tolist(), strict=True))
    expected = sorted(forgotten.tolist(), key=lambda i: (margin_of[i], i))[:16]
    assert [row.index for row in rows] == expected and expected != forgotten[:16].tolist()
    assert [row.margin for row in rows] == [margin_of[i] for i in expected]
    assert notes == ["forgotten since the previous check: 16 of 1,227 shown: the 16 smallest margins"]
    assert figure.texts[-1].get_text() == notes[0]


def test_an_old_file_cut_by_index_claims_no_smallest_margins(tmp_path: Path, drawn: dict) -> None:
    _, forgotten = hundred_class_check(tmp_path / "run", old=True)
    make_sample_report(tmp_path / "run", tmp_path / "report.png")
    ((rows, notes, _, _),) = drawn["blame"]
    assert [row.index for row in rows] == forgotten[:16].tolist()  # the file's cells, as they are
    assert notes == ["forgotten since the previous check: 16 of 1,227 shown"]
