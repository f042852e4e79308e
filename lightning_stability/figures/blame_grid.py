"""The blame grid (docs/samples.md): the samples a check blames, one titled set per blame set (forgotten, worst
margins, Condition B witness, data cluster), drawn straight into pixels — no matplotlib.

* `blame_figure` — the rendered picture of `BlameCell` rows: a grid of the samples' pictures when every input is
  a picture, else a table (index, label, prediction, margin, why blamed);
* `blame_layout` — where every picture and string of it goes (what `draw` paints), for tests and callers;
* `as_picture` — what a sample's input looks like in a cell, or ``None`` if it is no picture;
* `short_values` — the values of a short vector input, printed in the table's input column;
* `row_title` — a set's title, saying "16 of 1,227 shown: the 16 smallest margins" when it is cut;
* `default_to_image` — the input of a dataset item.

Sized for TensorBoard's image card (about 350 px wide, where a wider image is scaled down and its text with
it): each picture is resized (nearest) to a `CELL_PX` square, a set wraps into lines of `COLUMNS` cells, so a
grid is at most ``COLUMNS·pitch + 2·PAD`` ≈ 348 px wide (a longer title or set title wraps) and its 10-px text is
shown 1:1. Text is drawn with
Pillow's built-in font (``PIL.ImageFont.load_default``), which has no "→": captions say ``label -> prediction``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .render import RenderedFigure

__all__ = [
    "CELL_PX",
    "COLUMNS",
    "MAX_VALUES_SHOWN",
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

COLUMNS = 8
"""Cells per line of the grid; a longer set wraps onto more lines."""

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


@functools.cache
def _font() -> Any:
    from PIL import ImageFont

    return ImageFont.load_default()


def _width(text: str) -> int:
    return math.ceil(_font().getlength(text))


@functools.cache
def _line_height() -> int:
    return int(_font().getbbox("Ag#(8")[3]) + 2


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


def _wrapped(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and _width(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _title_width(title: str) -> int:
    """The title on one line if it fits the card (``COLUMNS`` cells wide), else that width (it wraps)."""
    return max(200, _row_width(title))


def _row_width(name: str) -> int:
    """A set's title on one line if it fits the card (``COLUMNS`` cells wide), else that width (it wraps)."""
    return min(_width(name), COLUMNS * (CELL_PX + 2 + GAP * 2))


def _row_name(layout: BlameLayout, name: str, y: int, line: int) -> int:
    """Place a set's title at ``y``, wrapped to the layout's width (one ``row`` string per line); returns the
    ``y`` below it."""
    for text in _wrapped(name, layout.width - 2 * PAD):
        layout.texts.append(Text(PAD, y, text, "row"))
        y += line
    return y


def _number(value: int) -> str:
    return str(value) if value >= 0 else "?"


def _grid_layout(rows: list[tuple[str, Sequence[BlameCell]]], title: str) -> BlameLayout:
    line = _line_height()
    captions = [(f"#{c.index}", f"{_number(c.target)} -> {_number(c.predicted)}") for _, cs in rows for c in cs]
    pitch = max([CELL_PX + 2 + GAP * 2, *(_width(text) + GAP for pair in captions for text in pair)])
    columns = min(COLUMNS, max(len(cells) for _, cells in rows))
    width = max(columns * pitch, *(_row_width(name) for name, _ in rows), _title_width(title)) + 2 * PAD
    layout = BlameLayout(width, 0)
    y = PAD
    for text in _wrapped(title, width - 2 * PAD):
        layout.texts.append(Text(PAD, y, text, "title"))
        y += line
    for name, cells in rows:
        y += GAP
        y = _row_name(layout, name, y, line) + 1
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
                for row, text in enumerate((f"#{cell.index}", f"{_number(cell.target)} -> {_number(cell.predicted)}")):
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
    line = _line_height()
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
    lefts = [PAD + sum(widths[:k]) + 3 * GAP * k for k in range(len(header))]
    width = max(lefts[-1] + widths[-1] - PAD, *(_row_width(name) for name, _ in rows), _title_width(title)) + 2 * PAD
    layout = BlameLayout(width, 0, table=table)
    y = PAD
    for text in _wrapped(title, width - 2 * PAD):
        layout.texts.append(Text(PAD, y, text, "title"))
        y += line
    y += GAP
    for left, text in zip(lefts, header, strict=True):
        layout.texts.append(Text(left, y, text, "header"))
    y += line
    layout.frames.append((PAD, y, width - PAD, y, BLACK))
    entries = iter(zip(table, (cell for _, cells in rows for cell in cells), strict=True))
    for name, cells in rows:
        y += GAP
        y = _row_name(layout, name, y, line)
        for entry, cell in (next(entries) for _ in cells):
            colour = RED if cell.target != cell.predicted else BLACK
            for k, (left, text) in enumerate(zip(lefts, entry, strict=True)):
                right_aligned = k < 4  # numbers line up on their last digit
                x = left + widths[k] - _width(text) if right_aligned else left
                layout.texts.append(Text(x, y, text, "cell", colour))
            y += line
    layout.height = y + PAD
    return layout


def blame_layout(rows: Sequence[tuple[str, Sequence[BlameCell]]], title: str) -> BlameLayout:
    """Where everything of `blame_figure` goes: the non-empty ``(name, cells)`` sets as a grid if every cell has
    a picture, else as a table; ``"no sample to blame"`` if no set has a cell."""
    kept = [(name, cells) for name, cells in rows if cells]
    if not kept:
        layout = BlameLayout(220, 2 * PAD + 2 * _line_height())
        layout.texts += [Text(PAD, PAD, title, "title"), Text(PAD, PAD + _line_height(), "no sample to blame", "row")]
        layout.width = max(layout.width, _width(title) + 2 * PAD)
        return layout
    if all(cell.picture is not None for _, cells in kept for cell in cells):
        return _grid_layout(kept, title)
    return _table_layout(kept, title)


def draw(layout: BlameLayout) -> np.ndarray:
    """The ``[height, width, 3]`` ``uint8`` pixels of ``layout`` (white, pictures pasted, frames and text drawn
    with Pillow's built-in font; the same pixels every time)."""
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
    font = _font()
    for text in layout.texts:
        pen.text((text.x, text.y), text.text, fill=text.colour, font=font)
    return np.asarray(image).copy()


def blame_figure(rows: Sequence[tuple[str, Sequence[BlameCell]]], title: str) -> RenderedFigure:
    """The blame picture of ``(name, cells)`` sets (`blame_layout`), rendered: each cell's picture in a frame (red
    when wrong) over ``#index`` and ``label -> prediction``; or the table of the sets when an input is no picture."""
    return RenderedFigure(draw(blame_layout(rows, title)))
