"""figures/render.py: a figure is drawn once, whatever the number of loggers that show it, and every logger gets
the same pixels (TensorBoard's image, the CSV logger's PNG)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import pytorch_lightning as pl
from matplotlib.figure import Figure
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_stability.figures.render import render
from lightning_stability.loggers import log_figure


def two_squares() -> Figure:
    """A 2 × 1 inch figure at 50 dpi: a red left half and a blue right half, no axes."""
    figure = plt.figure(figsize=(2, 1), dpi=50)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8), aspect="auto", interpolation="nearest")
    axes.set_axis_off()
    return figure


def test_render_gives_the_figures_pixels_at_its_dpi_and_closes_it() -> None:
    figure = two_squares()
    rendered = render(figure)
    assert rendered.rgb.shape == (50, 100, 3) and rendered.rgb.dtype == np.uint8
    assert rendered.rgb[25, 10].tolist() == [255, 0, 0] and rendered.rgb[25, 90].tolist() == [0, 0, 255]
    assert not plt.fignum_exists(figure.number)
    png = rendered.png()
    assert png is rendered.png()  # encoded once
    assert np.array_equal(np.array(Image.open(io.BytesIO(png)).convert("RGB")), rendered.rgb)


def test_log_figure_draws_once_for_every_logger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    draws = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (draws.append(1), original(self, renderer))[1])
    loggers = [pl.loggers.TensorBoardLogger(tmp_path, name="tb"), pl.loggers.CSVLogger(tmp_path, name="csv")]
    trainer = pl.Trainer(logger=loggers, enable_progress_bar=False, enable_model_summary=False)
    log_figure(trainer, "stability/test", two_squares, step=3)
    assert len(draws) == 1
    loggers[0].experiment.flush()
    events = EventAccumulator(loggers[0].log_dir, size_guidance={"images": 0}).Reload()
    (image,) = events.Images("stability/test")
    tensorboard_pixels = np.array(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
    (csv_png,) = Path(loggers[1].log_dir).rglob("*.png")
    assert image.step == 3 and "3" in csv_png.name
    assert np.array_equal(tensorboard_pixels, np.array(Image.open(csv_png).convert("RGB")))
    assert tensorboard_pixels.shape == (50, 100, 3)
