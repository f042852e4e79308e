"""lightning_stability.figures.blame_grid: what a blame cell shows for each kind of input, the blame grid and
the blame table, composed as pixels (docs/samples.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_stability.figures.blame_grid import (
    BLACK,
    CELL_PX,
    COLUMNS,
    GREY,
    MAX_VALUES_SHOWN,
    MAX_WIDTH,
    RED,
    BlameCell,
    as_picture,
    blame_figure,
    blame_layout,
    default_to_image,
    draw,
    row_title,
    short_values,
)
from lightning_stability.figures.headline import CARD
from lightning_stability.records import BLAME_SETS


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        (torch.rand(1, 28, 28), (28, 28)),  # grey [C, H, W]
        (torch.rand(3, 8, 6), (8, 6, 3)),  # colour [C, H, W] -> [H, W, C]
        (torch.rand(8, 6, 3), (8, 6, 3)),  # [H, W, C]
        (torch.rand(5, 7), (5, 7)),  # [H, W]
        (torch.rand(784), (28, 28)),  # flattened square
        (torch.rand(64), (8, 8)),
    ],
)
def test_pictures_of_images(value, shape) -> None:
    picture = as_picture(value)
    assert picture is not None and tuple(picture.shape) == shape
    flat = torch.as_tensor(value, dtype=torch.float32)
    if flat.dim() == 3 and flat.shape[0] == 3:
        assert torch.equal(picture[..., 1], flat[1])  # channel last, values unchanged
    else:
        assert torch.equal(picture.reshape(-1), flat.reshape(-1))


@pytest.mark.parametrize(
    "value",
    [
        torch.rand(10),
        torch.arange(16),  # 16 tokens are no 4 x 4 picture
        torch.rand(49),
        torch.rand(1),
        [0.5, 1.5],
        torch.rand(2, 5, 5),
        torch.rand(1, 1, 9),
        torch.rand(3, 3, 3, 3),
        torch.rand(0),
        "text",
    ],
)
def test_other_inputs_have_no_picture(value) -> None:
    assert as_picture(value) is None


def test_short_values_of_short_vectors_only() -> None:
    assert short_values([0.5, 1.5]) == (0.5, 1.5)
    assert short_values(torch.rand(MAX_VALUES_SHOWN + 1)) == () and short_values("text") == ()


def test_default_to_image_picks_the_input() -> None:
    x, y = torch.rand(4), torch.tensor(1)
    assert default_to_image((x, y)) is x
    assert default_to_image({"label": y, "pixels": x}) is x
    assert default_to_image(x) is x
    assert default_to_image(3) is None


def test_row_title_says_how_many_are_shown_of_a_cut_set_and_which() -> None:
    assert row_title("forgotten since the previous check", 16, 1227) == (
        "forgotten since the previous check: 16 of 1,227 shown: the 16 smallest margins"
    )
    assert row_title("worst margins", 1500, 41000) == "worst margins: 1,500 of 41,000 shown: the 1,500 smallest margins"
    # a cut of unknown choice (margin files of earlier versions) claims nothing about it
    assert row_title("forgotten", 16, 1227, smallest_margins=False) == "forgotten: 16 of 1,227 shown"
    assert row_title("worst margins", 3, 3) == "worst margins (3)" and row_title("x", 1500, 1500) == "x (1,500)"


@pytest.mark.parametrize("pictures", [True, False], ids=["grid", "table"])
def test_a_long_set_title_wraps_within_tensorboards_card(pictures: bool) -> None:
    title = row_title(BLAME_SETS["data_cluster"], 16, 1227)  # about 420 px on one line
    cells = [BlameCell(i, 0, 1, torch.rand(28, 28) if pictures else None, -0.5, "data cluster") for i in range(16)]
    layout = blame_layout([(title, cells), ("worst margins (1)", cells[:1])], "t")
    lines = layout.strings("row")
    assert len(lines) == 3 and " ".join(lines[:2]) == title and lines[2] == "worst margins (1)"
    assert layout.width <= MAX_WIDTH <= CARD[0]
    below = [y for _, y, _ in layout.pictures] if pictures else [t.y for t in layout.texts if t.kind == "cell"]
    second_line = [t.y for t in layout.texts if t.kind == "row"][1]
    assert min(below) > second_line  # the cells start under the whole title
    assert blame_figure([(title, cells)], "t").rgb.shape[1] <= MAX_WIDTH


def grid_rows(sets: int = 3, size: int = 16) -> list[tuple[str, list[BlameCell]]]:
    generator = torch.Generator().manual_seed(0)
    return [
        (
            f"set {s}: {size} of 41 shown",
            [
                BlameCell(100 * s + i, i % 10, (i + i % 3) % 10, torch.rand(28, 28, generator=generator))
                for i in range(size)
            ],
        )
        for s in range(sets)
    ]


TITLE = (
    "instability at epoch 7: causes (smallest margins, B witness), then the samples that flipped (label -> prediction)"
)


def test_a_grid_of_16_x_3_cells_fits_tensorboards_card_in_lines_of_6() -> None:
    rows = grid_rows()
    layout = blame_layout(rows, TITLE)
    figure = blame_figure(rows, TITLE)
    assert figure.rgb.shape == (layout.height, layout.width, 3) and figure.rgb.dtype == np.uint8
    assert layout.width <= MAX_WIDTH <= CARD[0] and COLUMNS * CELL_PX < layout.width
    tops = sorted({y for _, y, _ in layout.pictures})
    assert COLUMNS == 6 and len(layout.pictures) == 48 and len(tops) == 9  # 3 sets of 16, each on lines of 6, 6, 4
    assert len({x for x, _, _ in layout.pictures}) == COLUMNS
    assert len(layout.strings("title")) == 3  # the title wraps within the width
    # a few cells are a narrow image: fewer columns, and every caption still fits
    small = blame_layout([("few", rows[0][1][:3])], "t")
    assert len({x for x, _, _ in small.pictures}) == 3 and small.width < layout.width


def test_row_titles_and_captions_of_the_grid() -> None:
    cells = [
        BlameCell(3, 1, 2, torch.rand(8, 8)),
        BlameCell(4, 0, 0, torch.rand(8, 8)),
        BlameCell(12345, -1, -1, torch.rand(8, 8)),
    ]
    rows = [("forgotten (3)", cells), ("worst margins (0)", []), ("worst margins: 1 of 41 shown", cells[1:2])]
    layout = blame_layout(rows, "the title")
    assert layout.strings("title") == ["the title"]
    assert layout.strings("row") == ["forgotten (3)", "worst margins: 1 of 41 shown"]  # the empty set is left out
    assert layout.strings("caption") == ["#3", "1 -> 2", "#4", "0 -> 0", "#12345", "? -> ?", "#4", "0 -> 0"]
    colours = [text.colour for text in layout.texts if text.kind == "caption"]
    assert colours[:4] == [RED, RED, BLACK, BLACK]  # wrong in red
    assert [frame[-1] for frame in layout.frames][:2] == [RED, GREY]
    assert layout.table == []
    empty = blame_layout([("worst (0)", [])], "t")
    assert empty.strings("row") == ["no sample to blame"] and draw(empty).shape == (empty.height, empty.width, 3)


def test_a_cell_shows_its_picture_resized_nearest() -> None:
    picture = torch.rand(8, 8)
    figure = blame_figure([("one", [BlameCell(0, 1, 1, picture)])], "t")
    x, y, pixels = blame_layout([("one", [BlameCell(0, 1, 1, picture)])], "t").pictures[0]
    grey = ((picture - picture.min()) * (255 / (picture.max() - picture.min()))).round().to(torch.uint8).numpy()
    expected = np.repeat(np.repeat(grey, 4, axis=0), 4, axis=1)  # 8 -> 32: every pixel a 4 x 4 block
    assert pixels.shape == (CELL_PX, CELL_PX, 3)
    assert np.array_equal(figure.rgb[y : y + CELL_PX, x : x + CELL_PX], np.stack([expected] * 3, axis=-1))
    # 28 x 28 -> 32 x 32 is nearest-exact (the source pixel under each target pixel's centre), colour kept
    colour = torch.rand(28, 28, 3)
    x, y, pixels = blame_layout([("one", [BlameCell(0, 1, 1, colour)])], "t").pictures[0]
    scaled = ((colour - colour.min()) * (255 / (colour.max() - colour.min()))).round()
    nearest = torch.nn.functional.interpolate(scaled.permute(2, 0, 1)[None], size=(32, 32), mode="nearest-exact")
    assert np.array_equal(pixels, nearest[0].permute(1, 2, 0).to(torch.uint8).numpy())
    # not square: fits the cell, aspect kept
    assert blame_layout([("one", [BlameCell(0, 1, 1, torch.rand(8, 16))])], "t").pictures[0][2].shape == (16, 32, 3)


def test_drawing_is_deterministic() -> None:
    rows = grid_rows(sets=2, size=10)
    first, second = blame_figure(rows, "title"), blame_figure(rows, "title")
    assert np.array_equal(first.rgb, second.rgb)
    assert (first.rgb != 255).any(axis=-1)[:12].any()  # the title line is drawn


def test_non_pictures_are_a_table_of_the_blamed_samples() -> None:
    cells = [BlameCell(7, 1, 2, None, -0.25, "worst margin"), BlameCell(9, 0, 0, None, 1.5, "worst margin")]
    rows = [("worst margins: 2 of 41 shown", cells), ("witness (1)", [BlameCell(3, 2, 2, None, math.nan, "B witness")])]
    layout = blame_layout(rows, "t")
    assert layout.pictures == [] and layout.strings("row") == ["worst margins: 2 of 41 shown", "witness (1)"]
    assert layout.strings("header") == ["index", "label", "prediction", "margin", "why blamed"]
    assert layout.table == [
        ("7", "1", "2", "-0.25", "worst margin"),
        ("9", "0", "0", "1.5", "worst margin"),
        ("3", "2", "2", "n/a", "B witness"),
    ]
    assert layout.strings("cell") == [entry for row in layout.table for entry in row]
    assert [t.colour for t in layout.texts if t.kind == "cell"][::5] == [RED, BLACK, BLACK]
    figure = blame_figure(rows, "t")
    assert figure.rgb.shape == (layout.height, layout.width, 3) and layout.width <= 350
    # one cell without a picture tables them all; short vectors get an input column
    mixed = [("s", [BlameCell(1, 0, 0, torch.rand(8, 8)), BlameCell(2, 0, 1, None, 0.5, "w", (0.5, 1.5))])]
    table = blame_layout(mixed, "t")
    assert table.strings("header")[-1] == "input" and table.table[1][-1] == "0.5, 1.5" and table.table[0][-1] == ""


def text_width_of(text) -> int:
    from lightning_stability.figures.blame_grid import _face
    from lightning_stability.figures.headline import text_width

    return text_width(text.text, _face(text.kind))


def boxes_overlap(layout) -> list[tuple[str, str]]:
    """The pairs of strings of ``layout`` whose boxes (their width at their font, a line high) overlap."""
    from lightning_stability.figures.blame_grid import _face, _line_height
    from lightning_stability.figures.headline import text_width

    boxes = [
        (t.x, t.y, t.x + text_width(t.text, _face(t.kind)), t.y + _line_height(t.kind) - 1, t.text)
        for t in layout.texts
    ]
    return [
        (a[4], b[4])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]


def test_a_table_of_long_inputs_wraps_them_within_the_card() -> None:
    values = (-12345.6, 0.000123, 98765.4, -1.5, 2.25, 1e-9)  # six values: the most that are printed
    cells = [BlameCell(100000 + i, 10 * i, 10 * i + 1, None, -0.0123 * i, "data cluster", values) for i in range(3)]
    rows = [(row_title("cause: isolated input cluster (data check)", 3, 40), cells), ("flipped (1)", cells[:1])]
    layout = blame_layout(rows, TITLE)
    assert layout.width <= MAX_WIDTH <= CARD[0]
    assert blame_figure(rows, TITLE).rgb.shape == (layout.height, layout.width, 3)
    assert all(t.x + text_width_of(t) <= layout.width for t in layout.texts)
    printed = ", ".join(f"{v:.3g}" for v in values)
    assert [entry[-1] for entry in layout.table] == [printed] * 4
    # no room beside the six columns: the values go under their row, wrapped, after "input:"
    cells = " ".join(t.text for t in layout.texts if t.kind == "cell")
    assert cells.count(f"input: {printed.split(' ')[0]}") == 4 and cells.count("1e-09") == 4
    assert "input" not in layout.strings("header")
    short = blame_layout([("s", [BlameCell(7, 1, 2, None, -0.25, "w", (0.5, 1.5))])], "t")
    assert short.strings("header")[-1] == "input" and short.table[0][-1] == "0.5, 1.5"  # beside, where it fits
    assert boxes_overlap(layout) == []


def test_no_text_overlaps_and_the_title_is_12_pixels() -> None:
    for rows in (grid_rows(), [("worst margins (2)", [BlameCell(7, 1, 2, None, -0.25, "worst margin")] * 2)]):
        layout = blame_layout(rows, TITLE)
        assert boxes_overlap(layout) == []
        pixels = draw(layout)
        first = next(t for t in layout.texts if t.kind == "title")
        band = (pixels[first.y : first.y + 18].min(axis=2) < 160).any(axis=1)
        assert np.ptp(np.flatnonzero(band)) + 1 >= 12  # "instability ... epoch": ascenders to descenders
