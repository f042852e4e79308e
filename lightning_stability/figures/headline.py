"""The run so far at a glance (docs/dashboard.md): the training accuracy and its three certified floors at every
exact check, one line each in distinct colours with a legend, and every instability event marked — a small picture
logged at each check as ``stability/accuracy_and_floors``.

A picture, not a chart of scalars, because TensorBoard's Time Series smooths every scalar line by default (0.6):
an event at one check would be drawn as a ramp across several, and four values would sit on four cards with four
y-scales. Drawn with Pillow from the values (about a millisecond), so a check pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .render import RenderedFigure

__all__ = ["SERIES", "CheckPoint", "headline_picture"]

SERIES = (
    ("accuracy", (0, 0, 0)),
    ("loss floor (Th. 0)", (31, 119, 180)),
    ("Theorem A floor", (255, 127, 14)),
    ("Theorem B floor", (44, 160, 44)),
)
"""The lines of the picture, in the order of `CheckPoint.values`, with their colours."""

EVENT_COLOUR = (214, 39, 40)
WIDTH, HEIGHT = 340, 230
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 24, 62  # the plot area's margins in pixels


@dataclass(frozen=True)
class CheckPoint:
    """One exact check: its epoch (−1 before training), the accuracy and the three floors, and whether it was an
    instability event."""

    epoch: int
    values: tuple[float, float, float, float]
    event: bool


def _position(epochs: Sequence[int], epoch: int) -> float:
    first, last = epochs[0], epochs[-1]
    span = max(last - first, 1)
    return LEFT + (WIDTH - LEFT - RIGHT) * (epoch - first) / span


def _height(value: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - min(max(value, 0.0), 1.0))


def headline_picture(points: Sequence[CheckPoint], title: str = "accuracy and its certified floors") -> RenderedFigure:
    """The picture of ``points`` (in check order): a 340 × 230 RGB image that TensorBoard's image card shows
    unscaled. The y-axis is 0–1 (floors are probabilities); events are red triangles on the accuracy line and a
    red tick on the x-axis, counted in the legend."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((LEFT, 4), title, fill=(0, 0, 0), font=font)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    draw.rectangle((x0, y0, x1, y1), outline=(150, 150, 150))
    for level in (0.0, 0.5, 1.0):
        y = _height(level)
        draw.line((x0, y, x1, y), fill=(225, 225, 225))
        draw.text((4, y - 6), f"{level:.1f}", fill=(80, 80, 80), font=font)
    if points:
        epochs = [point.epoch for point in points]
        for label_epoch in sorted({epochs[0], epochs[-1]}):
            x = _position(epochs, label_epoch)
            draw.text((x - 6, y1 + 3), "start" if label_epoch < 0 else str(label_epoch), fill=(80, 80, 80), font=font)
        for series, (_, colour) in enumerate(SERIES):
            line = [(_position(epochs, p.epoch), _height(p.values[series])) for p in points]
            if len(line) > 1:
                draw.line(line, fill=colour, width=2)
            for x, y in line:
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        for point in points:
            if point.event:
                x, y = _position(epochs, point.epoch), _height(point.values[0])
                draw.polygon([(x, y - 8), (x - 5, y - 16), (x + 5, y - 16)], fill=EVENT_COLOUR)
                draw.line((x, y1 - 4, x, y1 + 2), fill=EVENT_COLOUR, width=2)
    events = sum(point.event for point in points)
    legend = [*SERIES, (f"instability event ({events})", EVENT_COLOUR)]
    for index, (name, colour) in enumerate(legend):
        x, y = LEFT + (index % 2) * 150, HEIGHT - BOTTOM + 18 + (index // 2) * 13
        draw.rectangle((x, y + 3, x + 12, y + 7), fill=colour)
        draw.text((x + 16, y), name, fill=(0, 0, 0), font=font)
    draw.text(((x0 + x1) / 2 - 15, y1 + 3), "epoch", fill=(80, 80, 80), font=font)
    return RenderedFigure(np.asarray(image, dtype=np.uint8).copy())
