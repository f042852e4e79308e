"""A matplotlib figure rendered once, for every logger and file that shows it (docs/cost.md).

Drawing a figure is the dear part of showing it (a blame grid: most of a check's time at an instability event);
TensorBoard's ``add_figure``, a PNG file and W&B's image each used to draw it again. `render` draws it once on an
Agg canvas at the figure's own dpi (each figure is sized for the card that shows it) and closes it; every logger takes the pixels (`RenderedFigure.rgb`) or their PNG encoding
(`RenderedFigure.png`, encoded once on first use).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["RenderedFigure", "render"]


@dataclass
class RenderedFigure:
    """The pixels of a drawn figure, ``[H, W, 3]`` ``uint8`` RGB."""

    rgb: np.ndarray
    _png: bytes | None = field(default=None, repr=False)

    def png(self) -> bytes:
        """The pixels as a PNG file's bytes (encoded on the first call only)."""
        if self._png is None:
            from PIL import Image

            buffer = io.BytesIO()
            Image.fromarray(self.rgb).save(buffer, format="PNG")
            self._png = buffer.getvalue()
        return self._png


def render(figure: Figure) -> RenderedFigure:
    """Draw ``figure`` once, at its dpi, and close it."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgb = np.array(canvas.buffer_rgba())[..., :3]  # a copy: the canvas's buffer dies with the figure
    plt.close(figure)
    return RenderedFigure(np.ascontiguousarray(rgb))
