"""figures/headline.py: the run-so-far picture — one line per value in its colour at the value's height on 0–1 and
at ``1 − value`` on the log panel, every instability event marked and labelled with its epoch, integer epoch ticks,
the values of the last check, the stop, spaced words, the size of TensorBoard's Time Series card."""

from __future__ import annotations

import math

import numpy as np

from lightning_stability.figures.headline import (
    CARD,
    EVENT_COLOUR,
    HEIGHT,
    LEFT,
    LINEAR,
    LOG,
    PAD,
    RIGHT,
    SERIES,
    STOP_COLOUR,
    TICKS_Y,
    WIDTH,
    ZERO_Y,
    CheckPoint,
    draw_text,
    epoch_ticks,
    headline_drawing,
    headline_picture,
    pillow_font,
    text_width,
    wrap_text,
)

POINTS = [  # the values of one check at least 3 pixels apart on both panels
    CheckPoint(-1, (0.1, 0.0, 0.0, 0.0), False),
    CheckPoint(0, (0.9, 0.6, 0.3, 0.0), False),
    CheckPoint(1, (0.75, 0.6, 0.3, 0.0), True),
    CheckPoint(2, (0.99, 0.9, 0.8, 0.6), False),
]


def x_of(epoch: float, first: int = -1, last: int = 2) -> float:
    return LEFT + PAD + (RIGHT - LEFT - 2 * PAD) * (epoch - first) / (last - first)


def colour_at(picture: np.ndarray, x: float, y: float) -> tuple[int, int, int]:
    return tuple(int(c) for c in picture[round(y), round(x)])


def test_the_picture_is_shown_one_to_one_by_the_time_series_card() -> None:
    picture = headline_picture(POINTS).rgb
    assert picture.shape == (HEIGHT, WIDTH, 3) == (215, 320, 3)
    assert WIDTH <= CARD[0] and HEIGHT == CARD[1]  # the card fits an image to its box: this one unscaled
    assert headline_picture(POINTS[:1]).rgb.shape == headline_picture([]).rgb.shape == (215, 320, 3)


def test_every_value_is_drawn_at_its_height_in_its_colour_on_both_panels() -> None:
    picture = headline_picture(POINTS).rgb
    lowest = -2  # the smallest 1 − value is 0.01: the log panel spans two decades
    for point in POINTS[1:]:
        for series, (_, colour) in enumerate(SERIES):
            value = point.values[series]
            linear = LINEAR[0] + (LINEAR[1] - LINEAR[0]) * (1 - value)
            log = LOG[0] + (LOG[1] - LOG[0]) * math.log10(1 - value) / lowest if value < 1 else ZERO_Y
            assert colour_at(picture, x_of(point.epoch), linear) == colour, (point.epoch, series)
            assert colour_at(picture, x_of(point.epoch), log) == colour, (point.epoch, series)


def test_values_near_one_are_told_apart_on_the_log_panel() -> None:
    near = [CheckPoint(0, (0.9, 0.8, 0.7, 0.6), False), CheckPoint(1, (1.0, 0.9999, 0.999, 0.99), False)]
    drawing = headline_drawing(near)
    x = x_of(1, 0, 1)
    rows = {}
    for series, (_, colour) in enumerate(SERIES):
        found = np.flatnonzero(np.all(drawing.rgb[:, round(x)] == colour, axis=1))
        rows[series] = found[found > LOG[0] - PAD]  # in the log panel
    # 1 − value: 0 (below the panel, on the line "0"), 1e-4, 1e-3, 1e-2 — a decade apart, 13 pixels here
    decade = (LOG[1] - LOG[0]) / 4
    assert abs(rows[0].mean() - ZERO_Y) <= 2
    for series, exponent in ((1, -4), (2, -3), (3, -2)):
        assert abs(rows[series].mean() - (LOG[0] + decade * -exponent)) <= 2, series
    assert min(abs(rows[a].mean() - rows[b].mean()) for a in rows for b in rows if a < b) >= decade - 3
    # on the linear panel the last three differ by at most 1 % of 0–1: one pixel
    assert (LINEAR[1] - LINEAR[0]) * 0.01 < 1
    # and the last check's values are written out, 4 decimals
    assert {"1.0000", "0.9999", "0.9990", "0.9900"} <= set(drawing.strings())


def test_values_that_differ_beyond_4_decimals_get_more() -> None:
    close = [CheckPoint(5, (0.99996, 0.99991, 0.9, 0.8), False)]  # 4 decimals: 1.0000 and 0.9999
    assert {"0.99996", "0.99991", "0.90000", "0.80000"} <= set(headline_drawing(close).strings())
    assert "0.999996" in headline_drawing([CheckPoint(5, (0.999996, 0.9, 0.8, 0.7), False)]).strings()
    assert {"1.0000", "0.9000"} <= set(headline_drawing([CheckPoint(5, (1.0, 0.9, 0.8, 0.7), False)]).strings())


def test_events_are_marked_in_red_and_labelled_with_their_epoch() -> None:
    drawing = headline_drawing(POINTS)
    red = np.all(drawing.rgb == np.array(EVENT_COLOUR, dtype=np.uint8), axis=2)
    plot = red[LINEAR[0] - 14 : ZERO_Y + PAD, LEFT + 1 : RIGHT]  # the panels and the triangle above the accuracy
    columns = np.flatnonzero(plot.any(axis=0)) + LEFT + 1
    assert columns.size and np.all(np.abs(columns - x_of(1)) <= 6)  # the triangle is 10 pixels wide
    # the triangle sits above the accuracy's point (0.75) at the event
    y = LINEAR[0] + (LINEAR[1] - LINEAR[0]) * 0.25
    assert red[round(y) - 10 : round(y) - 4, round(x_of(1))].all()
    labels = [(x, text, colour) for x, y, text, colour in drawing.texts if y == TICKS_Y]
    (event,) = [(x, text) for x, text, colour in labels if colour == EVENT_COLOUR]
    assert event[1] == "1" and abs(event[0] + text_width("1", pillow_font(11)) / 2 - x_of(1)) <= 1
    assert "instability" in drawing.strings() and "at 1" in drawing.strings()
    quiet = headline_drawing([CheckPoint(p.epoch, p.values, False) for p in POINTS])
    red_quiet = np.all(quiet.rgb == np.array(EVENT_COLOUR, dtype=np.uint8), axis=2)
    assert not red_quiet[LINEAR[0] - 14 : ZERO_Y + PAD, LEFT + 1 : RIGHT].any()
    assert "no instability" in quiet.strings()


def test_the_epoch_axis_has_integer_ticks() -> None:
    assert epoch_ticks(-1, 2, 188, 17) == [-1, 0, 1, 2]
    assert epoch_ticks(-1, 11, 188, 17) == [0, 2, 4, 6, 8, 10]  # 13 labels of 17 pixels do not fit in 188
    assert epoch_ticks(0, 100, 188, 17) == list(range(0, 101, 10))
    assert epoch_ticks(0, 499, 188, 17) == list(range(0, 500, 50))
    assert epoch_ticks(3, 3, 188, 17) == [3]
    drawing = headline_drawing(POINTS)
    ticks = [(x, text) for x, y, text, colour in drawing.texts if y == TICKS_Y and text != "epoch"]
    assert [text for x, y, text, _ in drawing.texts if y == TICKS_Y and x < LEFT - 4] == ["epoch"]  # the axis's name
    assert [text for _, text in ticks] == ["-1", "0", "2", "1"]  # the event's label last, in red
    for x, text in ticks:
        assert abs(x + text_width(text, pillow_font(11)) / 2 - x_of(int(text))) <= 1


def test_the_stop_is_drawn_and_said() -> None:
    drawing = headline_drawing(POINTS, stopped_at=2)
    grey = np.all(drawing.rgb == np.array(STOP_COLOUR, dtype=np.uint8), axis=2)
    panels = np.concatenate([grey[LINEAR[0] : LINEAR[1]], grey[LOG[0] : LOG[1]]])[:, LEFT + 1 : RIGHT]
    columns = np.flatnonzero(panels.any(axis=0)) + LEFT + 1
    assert columns.size and np.all(np.abs(columns - x_of(2)) <= 1)
    strings = drawing.strings()
    assert strings[strings.index("stopped at") + 1] == "epoch 2"
    plain = headline_drawing(POINTS)
    grey = np.all(plain.rgb == np.array(STOP_COLOUR, dtype=np.uint8), axis=2)
    assert not np.concatenate([grey[LINEAR[0] : LINEAR[1]], grey[LOG[0] : LOG[1]]])[:, LEFT + 1 : RIGHT].any()
    assert not any("stopped" in text for text in plain.strings())
    # a stop after the last check widens the axis to it
    later = headline_drawing(POINTS, stopped_at=5)
    assert "5" in [text for _, y, text, _ in later.texts if y == TICKS_Y]


def test_words_are_drawn_with_visible_spaces() -> None:
    """Pillow's built-in font has a space of 0.2 em, which at 10–12 px reads as none; draw_text spaces words."""
    from PIL import Image, ImageDraw

    for size in (10, 11, 12):
        font = pillow_font(size)
        text = "instability at epoch 8"
        image = Image.new("RGB", (200, 20), (255, 255, 255))
        draw_text(ImageDraw.Draw(image), (2, 2), text, font, (0, 0, 0))
        ink = (np.asarray(image).min(axis=2) < 160).any(axis=0)
        drawn = np.flatnonzero(ink)
        assert drawn[-1] - 2 <= text_width(text, font)
        runs, length = [], 0
        for blank in [*~ink[drawn[0] : drawn[-1] + 1], False]:
            length, runs = (length + 1, runs) if blank else (0, [*runs, length] if length else runs)
        gaps = sorted(runs, reverse=True)
        # three gaps of 4 blank columns or more, between the four words (plain Pillow at 10 px: at most 3 wide)
        assert len(gaps) > 3 and min(gaps[:3]) >= 4 and gaps[3] <= 2, (size, gaps)


def test_wrap_text_breaks_between_words_within_the_width() -> None:
    font = pillow_font(11)
    lines = wrap_text("instability at epoch 8: causes (smallest margins, B witness), then the flipped", 150, font)
    assert len(lines) > 1 and " ".join(lines).startswith("instability at epoch 8:")
    assert all(text_width(line, font) <= 150 for line in lines)


def test_floors_of_one_value_all_show() -> None:
    """The floors are all 0 at every check: Theorem B's wide line under the loss floor's under Theorem A's thin one."""
    zero = [CheckPoint(epoch, (0.5, 0.0, 0.0, 0.0), False) for epoch in range(3)]
    picture = headline_picture(zero).rgb
    y = round(LINEAR[1])
    for epoch in range(3):
        x = round(x_of(epoch, 0, 2))
        seen = {tuple(int(c) for c in picture[row, column]) for row in range(y - 3, y + 4) for column in (x, x + 5)}
        assert {colour for _, colour in SERIES[1:]} <= seen, epoch
    assert colour_at(picture, x_of(1, 0, 2), LINEAR[1]) == SERIES[2][1]  # Theorem A's on top


def test_many_events_keep_the_text_apart_and_inside_the_picture() -> None:
    font = pillow_font(11)
    points = [CheckPoint(epoch, (0.9, 0.5, 0.4, 0.3), epoch % 3 == 0 and epoch > 0) for epoch in range(-1, 131)]
    drawing = headline_drawing(points, stopped_at=130)
    boxes = sorted((x, x + text_width(text, font)) for x, y, text, _ in drawing.texts if y == TICKS_Y)
    assert all(right + 1 < left for (_, right), (left, _) in zip(boxes, boxes[1:]))  # no label over another
    assert all(x >= 0 and x + text_width(text, font) <= WIDTH for x, _, text, _ in drawing.texts)
    assert "instability (43)" in drawing.strings() and "at ..., 126, 129" in drawing.strings()
    red_labels = [text for x, y, text, colour in drawing.texts if y == TICKS_Y and colour == EVENT_COLOUR]
    assert 1 < len(red_labels) < 43 and all(int(text) % 3 == 0 for text in red_labels)
