"""figures/headline.py: the run-so-far picture — one line per value in its colour at the value's height, a red
mark at every instability event and none elsewhere, the card's size."""

from __future__ import annotations

import numpy as np

from lightning_stability.figures.headline import (
    BOTTOM,
    EVENT_COLOUR,
    HEIGHT,
    LEFT,
    RIGHT,
    SERIES,
    TOP,
    WIDTH,
    CheckPoint,
    headline_picture,
)

POINTS = [
    CheckPoint(-1, (0.1, 0.0, 0.0, 0.0), False),
    CheckPoint(0, (0.5, 0.25, 0.125, 0.0625), False),
    CheckPoint(1, (0.75, 0.5, 0.25, 0.125), True),
    CheckPoint(2, (1.0, 0.75, 0.5, 0.25), False),
]


def pixel_of(picture: np.ndarray, epoch: int, value: float) -> tuple[int, int, int]:
    """The picture's colour where a check of ``epoch`` (of −1…2) and ``value`` (0–1) is drawn, by hand."""
    x = LEFT + (WIDTH - LEFT - RIGHT) * (epoch + 1) / 3
    y = TOP + (HEIGHT - TOP - BOTTOM) * (1 - value)
    return tuple(int(c) for c in picture[round(y), round(x)])


def test_every_value_is_drawn_at_its_height_in_its_colour() -> None:
    picture = headline_picture(POINTS).rgb
    assert picture.shape == (HEIGHT, WIDTH, 3) == (230, 340, 3)  # a TensorBoard card (~350 px) shows it unscaled
    for point in POINTS[1:]:
        for series, (_, colour) in enumerate(SERIES):
            assert pixel_of(picture, point.epoch, point.values[series]) == colour


def test_events_are_marked_in_red_and_only_where_they_happened() -> None:
    red = np.all(headline_picture(POINTS).rgb == np.array(EVENT_COLOUR, dtype=np.uint8), axis=2)
    plot = red[TOP - 20 : HEIGHT - BOTTOM + 3, LEFT : WIDTH - RIGHT]  # the plot area (the legend's swatch is below)
    columns = np.flatnonzero(plot.any(axis=0)) + LEFT
    event_x = LEFT + (WIDTH - LEFT - RIGHT) * 2 / 3
    assert columns.size and abs(columns.mean() - event_x) < 3
    quiet = [CheckPoint(p.epoch, p.values, False) for p in POINTS]
    red_quiet = np.all(headline_picture(quiet).rgb == np.array(EVENT_COLOUR, dtype=np.uint8), axis=2)
    assert not red_quiet[TOP - 20 : HEIGHT - BOTTOM + 3, LEFT : WIDTH - RIGHT].any()


def test_a_single_check_and_no_check_draw() -> None:
    assert headline_picture(POINTS[:1]).rgb.shape == (230, 340, 3)
    assert headline_picture([]).rgb.shape == (230, 340, 3)
