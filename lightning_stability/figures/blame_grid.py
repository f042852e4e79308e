"""The blame grid (docs/samples.md): the samples a check blames, one titled set per blame set in the order given
(the monitor's: worst margins, Condition B witness, data cluster, then the flipped), drawn straight into pixels — no
matplotlib.

* `blame_figure` — the rendered picture of `BlameCell` rows: a grid of the samples' pictures when every input is
  a picture, else a table (index, label, prediction, margin, why blamed);
* `blame_layout` — where every picture and string of it goes (what `draw` paints), for tests and callers;
* `as_picture` — what a sample's input looks like in a cell, or ``None`` if it is no picture;
* `short_values` — the values of a short vector input, printed in the table's input column;
* `row_title` — a set's title, saying "16 of 1,227 shown: the 16 smallest margins" when it is cut;
* `default_to_image` — the input of a dataset item.

Sized for TensorBoard's Time Series image card (`lightning_stability.figures.headline.CARD`: at most 324 pixels
wide at a 1280 × 800 window): a picture is at most `MAX_WIDTH` wide, so the card's "actual image size" button
shows it 1:1 without a sideways scroll, its 11-px text (12-px title) readable; a set wraps into lines of at most
`COLUMNS` cells, a title into lines. The card fits a taller picture into its box (215 pixels high), shrinking it:
the causes come first, at the top. Text is drawn with Pillow's built-in font, its words spaced
(`lightning_stability.figures.headline.draw_text`); the font has no "→": captions say ``label -> prediction``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .headline import draw_text, pillow_font, text_width, wrap_text
from .render import RenderedFigure

__all__ = [
    "CELL_PX",
    "COLUMNS",
    "MAX_VALUES_SHOWN",
    "MAX_WIDTH",
    "BlameCell",
    "BlameLayout",
    "as_picture",
    "blame_figure",
    "blame_layout",
    "default_to_image",
    "draw",
    "row_title",
    "short_values",
]

MAX_VALUES_SHOWN = 6
"""A non-image input with at most this many values has them printed in the table's ``input`` column."""

CELL_PX = 32
"""The side of a cell's picture, in pixels (every picture is resized to fit it, nearest neighbour)."""

MAX_WIDTH = 320
"""The widest a blame picture is drawn (TensorBoard's Time Series card is 324 pixels wide at 1280 × 800)."""

COLUMNS = 6
"""Cells per line of the grid at most (fewer when a caption is wider than a sixth of `MAX_WIDTH`); a longer set
wraps onto more lines."""

FONT_PX, TITLE_PX = 11, 12

MIN_PICTURE_SIDE = 8
"""A flattened vector is a picture if it is a square of at least this side (64 values: not 16 tokens)."""

PAD = 6
GAP = 4
BLACK, RED, GREY, WHITE = (0, 0, 0), (200, 0, 0), (170, 170, 170), (255, 255, 255)


@dataclass(frozen=True)
class BlameCell:
    """One blamed sample: its index, label, prediction, picture (see `as_picture`; ``None``: its input is no
    picture, so the sets are tabled), margin, why it is blamed (a short name of its set) and, for a short vector,
    its values (`short_values`)."""

    index: int
    target: int
    predicted: int
    picture: Tensor | None
    margin: float = math.nan
    why: str = ""
    values: tuple[float, ...] = ()


@dataclass(frozen=True)
class Text:
    """A string at ``(x, y)`` (its top left), of a kind: ``title``, ``row`` (a line of a set's title), ``caption`` (a
    cell's index or ``label -> prediction``), ``header`` (a table column) or ``cell`` (a table entry)."""

    x: int
    y: int
    text: str
    kind: str
    colour: tuple[int, int, int] = BLACK


@dataclass
class BlameLayout:
    """Everything a blame picture shows, placed: ``width × height`` pixels, the pictures (top left and ``[h, w,
    3]`` ``uint8`` pixels), frames (``x0, y0, x1, y1`` and colour), the strings, and for a table its rows' strings."""

    width: int
    height: int
    pictures: list[tuple[int, int, np.ndarray]] = field(default_factory=list)
    frames: list[tuple[int, int, int, int, tuple[int, int, int]]] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    table: list[tuple[str, ...]] = field(default_factory=list)

    def strings(self, kind: str) -> list[str]:
        """The strings of one kind, in drawing order."""
        return [text.text for text in self.texts if text.kind == kind]


def default_to_image(item: Any) -> Any:
    """The input of a dataset item: ``item[0]`` of an ``(x, y)`` pair, the first tensor of a dict with more than one
    value, the item itself if it is a tensor; ``None`` otherwise."""
    if isinstance(item, Tensor):
        return item
    if isinstance(item, tuple | list) and item:
        return item[0]
    if isinstance(item, dict):
        tensors = [value for value in item.values() if isinstance(value, Tensor) and value.numel() > 1]
        return tensors[0] if tensors else None
    return None


def _as_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value.detach().cpu().to(torch.float32)
    try:
        return torch.as_tensor(value).to(torch.float32)
    except (TypeError, ValueError, RuntimeError):
        return None


def as_picture(value: Any) -> Tensor | None:
    """The float tensor a cell shows, ``[H, W]`` (grey) or ``[H, W, 3]``, of an image — ``[C, H, W]`` with
    ``C ∈ {1, 3}``, ``[H, W]``, ``[H, W, 3]`` or a flattened square of side ≥ `MIN_PICTURE_SIDE`; ``None`` for
    anything else (tokens, features: the sets are tabled)."""
    data = _as_tensor(value)
    if data is None:
        return None
    if data.dim() == 3 and data.shape[0] in (1, 3) and min(data.shape[1:]) >= 2:
        return data[0] if data.shape[0] == 1 else data.permute(1, 2, 0)
    if data.dim() == 3 and data.shape[2] == 3 and min(data.shape[:2]) >= 2:
        return data
    if data.dim() == 2 and min(data.shape) >= 2:
        return data
    if data.dim() == 1:
        side = math.isqrt(data.numel())
        if side >= MIN_PICTURE_SIDE and side * side == data.numel():
            return data.reshape(side, side)
    return None


def short_values(value: Any) -> tuple[float, ...]:
    """The values of an input of at most `MAX_VALUES_SHOWN` values; ``()`` for a longer or unreadable one."""
    data = _as_tensor(value)
    if data is None or not 0 < data.numel() <= MAX_VALUES_SHOWN:
        return ()
    return tuple(float(v) for v in data.reshape(-1).tolist())


def row_title(title: str, shown: int, total: int, smallest_margins: bool = True) -> str:
    """``"forgotten since the previous check: 16 of 1,227 shown: the 16 smallest margins"`` for a set cut to its
    ``shown`` smallest margins of its ``total`` samples (``smallest_margins=False``, a cut of unknown choice, as in
    margin files of earlier versions: ``"…: 16 of 1,227 shown"``), else ``"worst margins (3)"``; numbers with a
    thousands separator."""
    if shown >= total:
        return f"{title} ({total:,})"
    cut = f"{title}: {shown:,} of {total:,} shown"
    return f"{cut}: the {shown:,} smallest margins" if smallest_margins else cut


# ---------------------------------------------------------------------------------------------------- pixels


def _face(kind: str = "") -> Any:
    """The font of a `Text` of ``kind``: `TITLE_PX` for the title, `FONT_PX` for the rest."""
    return pillow_font(TITLE_PX if kind == "title" else FONT_PX)


def _width(text: str, kind: str = "") -> int:
    return text_width(text, _face(kind))


def _line_height(kind: str = "") -> int:
    return int(_face(kind).getbbox("Ag#(8")[3]) + 3


def _resized(picture: Tensor) -> np.ndarray:
    """``picture`` scaled to ``0…255`` (its own min and max) and resized, nearest neighbour (the pixel under each
    target pixel's centre), to fit a `CELL_PX` square: ``[h, w, 3]`` ``uint8``."""
    data = picture.detach().cpu().to(torch.float32)
    finite = torch.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(finite.min()), float(finite.max())
    scaled = (finite - low) * (255.0 / (high - low)) if high > low else torch.zeros_like(finite)
    pixels = scaled.round().clamp(0, 255).to(torch.uint8).numpy()
    height, width = pixels.shape[:2]
    scale = CELL_PX / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    rows = ((np.arange(new_h) + 0.5) * height / new_h).astype(np.int64)
    columns = ((np.arange(new_w) + 0.5) * width / new_w).astype(np.int64)
    out = pixels[rows][:, columns]
    return np.repeat(out[..., None], 3, axis=2) if out.ndim == 2 else np.ascontiguousarray(out)


def _text_width(title: str, rows: Sequence[tuple[str, Sequence[BlameCell]]]) -> int:
    """The widest of the title and the set titles on one line, at most `MAX_WIDTH` (beyond it they wrap)."""
    return min(MAX_WIDTH - 2 * PAD, max(_width(title, "title"), *(_width(name) for name, _ in rows)))


def _lines(layout: BlameLayout, text: str, kind: str, y: int) -> int:
    """Place ``text`` at ``y``, wrapped to the layout's width (one string of ``kind`` per line); returns the ``y``
    below it."""
    for line in wrap_text(text, layout.width - 2 * PAD, _face(kind)):
        layout.texts.append(Text(PAD, y, line, kind))
        y += _line_height(kind)
    return y


def _number(value: int) -> str:
    return str(value) if value >= 0 else "?"


def _grid_layout(rows: list[tuple[str, Sequence[BlameCell]]], title: str) -> BlameLayout:
    line = _line_height()
    captions = [(f"#{c.index}", f"{_number(c.target)} -> {_number(c.predicted)}") for _, cs in rows for c in cs]
    room = MAX_WIDTH - 2 * PAD
    pitch = max([CELL_PX + 2 + GAP * 2, room // COLUMNS, *(_width(text) + GAP for pair in captions for text in pair)])
    columns = max(1, min(room // pitch, max(len(cells) for _, cells in rows)))
    layout = BlameLayout(max(columns * pitch, _text_width(title, rows)) + 2 * PAD, 0)
    y = _lines(layout, title, "title", PAD)
    for name, cells in rows:
        y = _lines(layout, name, "row", y + GAP) + 1
        for start in range(0, len(cells), columns):
            for column, cell in enumerate(cells[start : start + columns]):
                assert cell.picture is not None
                left = PAD + column * pitch
                x = left + (pitch - CELL_PX) // 2
                pixels = _resized(cell.picture)
                top_x, top_y = x + (CELL_PX - pixels.shape[1]) // 2, y + 1 + (CELL_PX - pixels.shape[0]) // 2
                layout.pictures.append((top_x, top_y, pixels))
                wrong = cell.target != cell.predicted
                layout.frames.append((x - 1, y, x + CELL_PX, y + CELL_PX + 1, RED if wrong else GREY))
                for row, text in enumerate(captions[len(layout.pictures) - 1]):
                    centred = left + (pitch - _width(text)) // 2
                    layout.texts.append(
                        Text(centred, y + CELL_PX + 3 + row * line, text, "caption", RED if wrong else BLACK)
                    )
            y += CELL_PX + 3 + 2 * line + GAP
    layout.height = y + PAD
    return layout


def _margin(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "n/a"


def _table_layout(rows: list[tuple[str, Sequence[BlameCell]]], title: str) -> BlameLayout:
    """The sets as a table at most `MAX_WIDTH` wide: a short vector's values (the last column) wrap onto more
    lines of its row."""
    line, gap = _line_height(), 2 * GAP
    with_values = any(cell.values for _, cells in rows for cell in cells)
    header = ("index", "label", "prediction", "margin", "why blamed", *(("input",) if with_values else ()))
    table = [
        (
            str(cell.index),
            _number(cell.target),
            _number(cell.predicted),
            _margin(cell.margin),
            cell.why or name,
            *((", ".join(f"{v:.3g}" for v in cell.values),) if with_values else ()),
        )
        for name, cells in rows
        for cell in cells
    ]
    widths = [max(_width(entry[k]) for entry in [header, *table]) for k in range(len(header))]
    lefts = [PAD + sum(widths[:k]) + gap * k for k in range(len(header))]
    under = False  # the values beside the row, in the room left; under it when their longest number has no room
    if with_values:
        room = MAX_WIDTH - PAD - lefts[-1]
        under = room < max(_width(word) for entry in table for word in f"input: {entry[-1]}".split(" "))
        lefts[-1], widths[-1] = (lefts[1], MAX_WIDTH - PAD - lefts[1]) if under else (lefts[-1], min(widths[-1], room))
    cells_width = lefts[-1] + widths[-1] - PAD
    layout = BlameLayout(max(cells_width, _text_width(title, rows)) + 2 * PAD, 0, table=table)
    y = _lines(layout, title, "title", PAD) + GAP
    for left, text in zip(lefts, header[:-1] if under else header, strict=False):
        layout.texts.append(Text(left, y, text, "header"))
    y += line
    layout.frames.append((PAD, y, layout.width - PAD, y, BLACK))
    entries = iter(zip(table, (cell for _, cells in rows for cell in cells), strict=True))
    for name, cells in rows:
        y = _lines(layout, name, "row", y + GAP)
        for entry, cell in (next(entries) for _ in cells):
            colour = RED if cell.target != cell.predicted else BLACK
            below = 1
            for k, (left, text) in enumerate(zip(lefts, entry, strict=True)):
                values = with_values and k == len(entry) - 1
                parts = wrap_text(f"input: {text}" if under else text, widths[k], _face()) if values else [text]
                top = y + line if values and under else y
                below = max(below, len(parts) + (top - y) // line)
                for part, line_y in zip(parts, range(top, top + line * len(parts), line), strict=True):
                    right_aligned = k < 4  # numbers line up on their last digit
                    x = left + widths[k] - _width(part) if right_aligned else left
                    layout.texts.append(Text(x, line_y, part, "cell", colour))
            y += line * below
    layout.height = y + PAD
    return layout


def blame_layout(rows: Sequence[tuple[str, Sequence[BlameCell]]], title: str) -> BlameLayout:
    """Where everything of `blame_figure` goes: the non-empty ``(name, cells)`` sets as a grid if every cell has
    a picture, else as a table; ``"no sample to blame"`` if no set has a cell. At most `MAX_WIDTH` wide."""
    kept = [(name, cells) for name, cells in rows if cells]
    if not kept:
        layout = BlameLayout(max(220, _text_width(title, [("no sample to blame", [])]) + 2 * PAD), 0)
        layout.height = _lines(layout, "no sample to blame", "row", _lines(layout, title, "title", PAD)) + PAD
        return layout
    if all(cell.picture is not None for _, cells in kept for cell in cells):
        return _grid_layout(kept, title)
    return _table_layout(kept, title)


def draw(layout: BlameLayout) -> np.ndarray:
    """The ``[height, width, 3]`` ``uint8`` pixels of ``layout`` (white, pictures pasted, frames and text drawn
    with Pillow's built-in font, words spaced; the same pixels every time)."""
    from PIL import Image, ImageDraw

    canvas = np.full((layout.height, layout.width, 3), 255, dtype=np.uint8)
    for x0, y0, x1, y1, colour in layout.frames:
        canvas[y0 : y1 + 1, x0 : x1 + 1] = colour
        if x1 - x0 > 1 and y1 - y0 > 1:
            canvas[y0 + 1 : y1, x0 + 1 : x1] = WHITE
    for x, y, pixels in layout.pictures:
        canvas[y : y + pixels.shape[0], x : x + pixels.shape[1]] = pixels
    image = Image.fromarray(canvas)
    pen = ImageDraw.Draw(image)
    for text in layout.texts:
        draw_text(pen, (text.x, text.y), text.text, _face(text.kind), text.colour)
    return np.asarray(image).copy()


def blame_figure(rows: Sequence[tuple[str, Sequence[BlameCell]]], title: str) -> RenderedFigure:
    """The blame picture of ``(name, cells)`` sets (`blame_layout`), rendered: each cell's picture in a frame (red
    when wrong) over ``#index`` and ``label -> prediction``; or the table of the sets when an input is no picture."""
    return RenderedFigure(draw(blame_layout(rows, title)))
