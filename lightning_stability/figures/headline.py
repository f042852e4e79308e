"""The run so far at a glance (docs/dashboard.md): the training accuracy and its three certified floors at every
exact check, every instability event marked and labelled with its epoch — a small picture logged at each check as
``stability/accuracy_and_floors``.

A picture, not a chart of scalars, because TensorBoard's Time Series smooths every scalar line by default (0.6):
an event at one check would be drawn as a ramp across several, and four values would sit on four cards with four
y-scales. Drawn with Pillow from the values (about a millisecond), so a check pays nothing for it.

Two panels share the epoch axis: the values on 0–1, and ``1 − value`` on a log scale, where a floor at 0.9991 and
an accuracy at 1.0000 are a decade apart instead of one pixel; beside them, each line's value at the last check.

Sized for TensorBoard's Time Series image card (`CARD`), which scales an image to fit its box: `WIDTH` × `HEIGHT`
is shown 1:1 there. The text helpers (`pillow_font`, `text_width`, `draw_text`, `wrap_text`) are shared with the
blame grid: Pillow's built-in font (Aileron) has a space of 0.2 em, 2 pixels at 10 px, which the letters' side
bearings make look like no space at all ("instabilityat epoch 8"), so words are placed with a wider gap.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .render import RenderedFigure

__all__ = [
    "CARD",
    "SERIES",
    "CheckPoint",
    "Headline",
    "draw_text",
    "epoch_ticks",
    "headline_drawing",
    "headline_picture",
    "pillow_font",
    "text_width",
    "wrap_text",
]

CARD = (324, 215)
"""Width and height of the image box of a TensorBoard (2.21) Time Series image card in a 1280 × 800 window at the
default settings, measured in headless Chromium (the settings pane open, as on a first visit; closed, the box is 450
wide and as high). The card scales an image to fit the box (``object-fit: contain``, up or down), so a picture is
shown 1:1 only when it is this high and at most this wide; a taller one shrinks by ``215 / height``."""

SERIES = (
    ("accuracy", (0, 0, 0)),
    ("loss floor", (31, 119, 180)),
    ("Th. A floor", (255, 127, 14)),
    ("Th. B floor", (44, 160, 44)),
)
"""The lines of the picture, in the order of `CheckPoint.values`, with their colours (the loss floor is Theorem 0's)."""

LAYERS = ((3, 3, 3), (1, 2, 2), (2, 1, 1.5), (0, 2, 2))
"""The lines from bottom to top, ``(series, width, dot radius)``: Theorem B's wide under the loss floor's under Theorem
A's thin one, the accuracy over all — floors of one value (all 0 early in training) all show."""

EVENT_COLOUR = (214, 39, 40)
STOP_COLOUR = (90, 90, 90)
GRID, AXIS, TEXT = (228, 228, 228), (150, 150, 150), (70, 70, 70)
WIDTH, HEIGHT = 320, 215
LEFT, RIGHT = 42, 226
"""The plot area's left and right edges; the legend with the last values is right of it."""
LINEAR = (26, 96)
"""The y of 1 and of 0 in the upper panel (the values)."""
LOG = (124, 170)
"""The y of 1 and of the lowest decade in the lower panel (``1 − value``, log scale)."""
ZERO_Y = 183
"""Where a value of exactly 1 (``1 − value = 0``, off any log scale) is drawn, under the lower panel."""
TICKS_Y = 191
PAD = 4
"""Between the plot area's edge and its first and last check."""
FONT_PX, TITLE_PX = 11, 12


@dataclass(frozen=True)
class CheckPoint:
    """One exact check: its epoch (−1 before training), the accuracy and the three floors, and whether it was an
    instability event."""

    epoch: int
    values: tuple[float, float, float, float]
    event: bool


@dataclass
class Headline:
    """The picture (``[HEIGHT, WIDTH, 3]`` ``uint8``) and every string on it, ``(x, y, text, colour)``."""

    rgb: np.ndarray
    texts: list[tuple[int, int, str, tuple[int, int, int]]] = field(default_factory=list)

    def strings(self) -> list[str]:
        return [text for _, _, text, _ in self.texts]


# ---------------------------------------------------------------------------------------------------- text


@functools.cache
def pillow_font(size: int = FONT_PX) -> Any:
    """Pillow's built-in font at ``size`` pixels (Aileron, Pillow ≥ 10.1; older Pillows have only a fixed bitmap
    font, used at its own size)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1
        return ImageFont.load_default()


def _space(font: Any) -> int:
    """The gap between two words: 0.35 em (Aileron's own space is 0.2 em), never less than the font's space."""
    return max(round(0.35 * getattr(font, "size", 10)), math.ceil(font.getlength(" ")))


def text_width(text: str, font: Any) -> int:
    """The width of ``text`` as `draw_text` draws it, in pixels."""
    words = text.split(" ")
    return round(sum(font.getlength(word) for word in words)) + _space(font) * (len(words) - 1)


def draw_text(pen: Any, xy: tuple[float, float], text: str, font: Any, fill: tuple[int, int, int]) -> None:
    """Draw ``text`` at ``xy`` (top left) word by word, with `_space` between the words."""
    x, y = round(xy[0]), round(xy[1])
    for word in text.split(" "):
        if word:
            pen.text((x, y), word, fill=fill, font=font)
        x += round(font.getlength(word)) + _space(font)


def wrap_text(text: str, width: int, font: Any) -> list[str]:
    """``text`` in lines of at most ``width`` pixels, broken between words (a longer word stands alone)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and text_width(f"{lines[-1]} {word}", font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


# ---------------------------------------------------------------------------------------------------- axes


def epoch_ticks(first: int, last: int, pixels: float, label_px: int) -> list[int]:
    """Integer epochs to label between ``first`` and ``last`` on an axis of ``pixels``: every multiple of the
    smallest step of 1, 2, 5, 10, 20, 50, … that leaves ``label_px`` per label; ``[first]`` for one epoch."""
    span = last - first
    if span <= 0:
        return [first]
    step = 1
    while span / step * label_px > pixels:
        step = step * 5 // 2 if str(step).startswith("2") else step * 2
    return [epoch for epoch in range(first, last + 1) if epoch % step == 0]


def _decimals(values: Sequence[float]) -> int:
    """The decimals (4 to 6) that tell apart the distinct ``values`` and show no value below 1 as 1."""
    for decimals in (4, 5):
        shown = [f"{v:.{decimals}f}" for v in values]
        below_one = all(v >= 1 or float(s) < 1 for v, s in zip(values, shown, strict=True))
        if len(set(shown)) == len(set(values)) and below_one:
            return decimals
    return 6


@dataclass(frozen=True)
class _Axes:
    first: int
    last: int
    lowest: int
    """The log panel's lowest decade, ≤ −2."""

    def x(self, epoch: float) -> float:
        span = max(self.last - self.first, 1)
        return LEFT + PAD + (RIGHT - LEFT - 2 * PAD) * (epoch - self.first) / span

    def linear(self, value: float) -> float:
        return LINEAR[0] + (LINEAR[1] - LINEAR[0]) * (1.0 - min(max(value, 0.0), 1.0))

    def log(self, value: float) -> float:
        gap = 1.0 - min(max(value, 0.0), 1.0)
        if gap <= 0.0:
            return ZERO_Y
        return LOG[0] + (LOG[1] - LOG[0]) * max(math.log10(gap), self.lowest) / self.lowest


def _axes(points: Sequence[CheckPoint], stopped_at: int | None) -> _Axes:
    epochs = [point.epoch for point in points] + ([stopped_at] if stopped_at is not None else [])
    gaps = [1.0 - v for point in points for v in point.values if math.isfinite(v) and 0.0 <= v < 1.0]
    lowest = min([-2, *(math.floor(math.log10(gap) + 1e-9) for gap in gaps)])  # 1 − 0.9999: the decade of 1e-4
    return _Axes(min(epochs, default=0), max(epochs, default=1), max(lowest, -9))


# ---------------------------------------------------------------------------------------------------- drawing


def headline_drawing(
    points: Sequence[CheckPoint], title: str = "accuracy and its certified floors", stopped_at: int | None = None
) -> Headline:
    """The picture of ``points`` (in check order) and its strings: see `headline_picture`."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    font, big = pillow_font(FONT_PX), pillow_font(TITLE_PX)
    drawing = Headline(np.zeros((0,)))

    def write(x: float, y: float, text: str, colour: tuple[int, int, int] = TEXT, face: Any = font) -> None:
        draw_text(pen, (x, y), text, face, colour)
        drawing.texts.append((round(x), round(y), text, colour))

    axes = _axes(points, stopped_at)
    write(4, 3, title, (0, 0, 0), big)
    for top, bottom in (LINEAR, (LOG[0], ZERO_Y)):
        pen.rectangle((LEFT, top - PAD, RIGHT, bottom + PAD), outline=AXIS)
    for level, label in ((1.0, "1"), (0.5, "0.5"), (0.0, "0")):
        y = axes.linear(level)
        pen.line((LEFT + 1, y, RIGHT - 1, y), fill=GRID)
        write(LEFT - 4 - text_width(label, font), y - 6, label)
    write(LEFT, LINEAR[1] + PAD + 3, "1 - value, log scale:")
    every = max(1, math.ceil(-axes.lowest * 12 / (LOG[1] - LOG[0])))  # a label per 12 pixels at most
    for decade in range(0, axes.lowest - 1, -1):
        y = axes.log(1.0 - 10.0**decade)
        pen.line((LEFT + 1, y, RIGHT - 1, y), fill=GRID)
        if decade % every == 0:
            label = {0: "1", -1: "0.1", -2: "0.01"}.get(decade, f"1e{decade}")
            write(LEFT - 4 - text_width(label, font), y - 6, label)
    write(LEFT - 4 - text_width("0", font), ZERO_Y - 6, "0")
    events = [point.epoch for point in points if point.event]
    for epoch in events:
        x = axes.x(epoch)
        for top, bottom in ((LINEAR[0] - PAD, LINEAR[1] + PAD), (LOG[0] - PAD, ZERO_Y + PAD)):  # not over the caption
            for y in range(top, bottom, 4):
                pen.line((x, y, x, y + 1), fill=EVENT_COLOUR)
    if stopped_at is not None:
        x = axes.x(stopped_at)
        pen.line((x, LINEAR[0] - PAD, x, ZERO_Y + PAD), fill=STOP_COLOUR, width=2)
    red: list[tuple[float, str]] = []  # each event's epoch in red, but over no other event's
    for epoch in events:
        left = axes.x(epoch) - text_width(str(epoch), font) / 2
        if not red or left > red[-1][0] + text_width(red[-1][1], font) + 2:
            red.append((left, str(epoch)))
    width = RIGHT - LEFT - 2 * PAD
    for epoch in epoch_ticks(axes.first, axes.last, width, text_width("-10", font) + 4) if points else []:
        x = axes.x(epoch)
        pen.line((x, ZERO_Y + PAD, x, ZERO_Y + PAD + 3), fill=AXIS)
        left, right = x - text_width(str(epoch), font) / 2, x + text_width(str(epoch), font) / 2
        if all(right + 3 < at or at + text_width(t, font) + 3 < left for at, t in [(2, "epoch"), *red]):  # taken
            write(left, TICKS_Y, str(epoch))
    for left, label in red:
        write(left, TICKS_Y, label, EVENT_COLOUR)
    write(2, TICKS_Y, "epoch")  # the axis's name, left of its first tick
    for series, width, radius in LAYERS:
        colour = SERIES[series][1]
        for place in (axes.linear, axes.log):
            line = [(axes.x(p.epoch), place(p.values[series])) for p in points if math.isfinite(p.values[series])]
            if len(line) > 1:
                pen.line(line, fill=colour, width=width)
            for x, y in line:
                pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    for point in points:
        if point.event and math.isfinite(point.values[0]):
            x, y = axes.x(point.epoch), axes.linear(point.values[0])
            side = -1 if y - 12 >= LINEAR[0] - PAD else 1  # above the point, below it where the title is
            pen.polygon([(x, y + 3 * side), (x - 5, y + 12 * side), (x + 5, y + 12 * side)], fill=EVENT_COLOUR)
    _legend(pen, write, points, events, stopped_at)
    drawing.rgb = np.asarray(image, dtype=np.uint8).copy()
    return drawing


def _epochs_text(events: list[int], shown: list[int]) -> str:
    return f"at {'..., ' if len(shown) < len(events) else ''}{', '.join(str(epoch) for epoch in shown)}"


def _legend(pen: Any, write: Any, points: Sequence[CheckPoint], events: list[int], stopped_at: int | None) -> None:
    """Right of the plot: each line's name and value at the last check, then the events and the stop."""
    x, y = RIGHT + 6, LINEAR[0] - PAD
    if points:
        last = points[-1]
        write(x, y, "before training:" if last.epoch < 0 else f"epoch {last.epoch}:", (0, 0, 0))
        decimals = _decimals([v for v in last.values if math.isfinite(v)])
        for (name, colour), value in zip(SERIES, last.values, strict=True):
            y += 13
            pen.rectangle((x, y + 3, x + 7, y + 10), fill=colour)
            write(x + 11, y, name, colour)
            y += 12
            write(x + 11, y, f"{value:.{decimals}f}" if math.isfinite(value) else "n/a", (0, 0, 0))
    y += 17
    pen.polygon([(x + 4, y + 11), (x, y + 3), (x + 8, y + 3)], fill=EVENT_COLOUR)
    if not events:
        write(x + 11, y, "no instability", EVENT_COLOUR)
        events_text = ""
    else:
        write(x + 11, y, f"instability ({len(events)})" if len(events) > 1 else "instability", EVENT_COLOUR)
        shown = events[-3:]
        while len(shown) > 1 and text_width(_epochs_text(events, shown), pillow_font(FONT_PX)) > WIDTH - x - 13:
            shown = shown[1:]  # the latest that fit
        events_text = _epochs_text(events, shown)
    if events_text:
        y += 12
        write(x + 11, y, events_text, EVENT_COLOUR)
    if stopped_at is not None:
        y += 17
        pen.rectangle((x + 3, y + 2, x + 4, y + 11), fill=STOP_COLOUR)
        write(x + 11, y, "stopped at", STOP_COLOUR)
        write(x + 11, y + 12, f"epoch {stopped_at}", STOP_COLOUR)


def headline_picture(
    points: Sequence[CheckPoint], title: str = "accuracy and its certified floors", stopped_at: int | None = None
) -> RenderedFigure:
    """The picture of ``points`` (in check order): a `WIDTH` × `HEIGHT` RGB image, shown 1:1 by TensorBoard's
    Time Series card (`CARD`). Upper panel: the accuracy (black) and the loss, Theorem A and Theorem B floors on
    0–1; lower panel: ``1 − value`` of each on a log scale (a value of exactly 1 on the line ``0`` below it), so
    that lines near 1 are told apart. Integer epoch ticks; every instability event a red triangle on the accuracy,
    a dotted red line and its epoch in red on the axis; ``stopped_at`` (the epoch at which the monitor stopped
    training, ``None``: it did not) a grey line. Right: each value at the last check (4 decimals, more where two
    differ only further), the events' epochs and the stop."""
    return RenderedFigure(headline_drawing(points, title, stopped_at).rgb)
