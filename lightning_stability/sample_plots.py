"""Where the per-sample figures of this module went (kept so that ``lightning_stability.sample_plots`` still
imports):

* `blame_figure`, `BlameCell`, `as_picture`, `default_to_image`, `MAX_VALUES_SHOWN` —
  `lightning_stability.figures.blame_grid`;
* `data_map_figure` — `lightning_stability.figures.data_map`;
* `run_dynamics`, `make_sample_report` — `lightning_stability.figures.sample_report`.

New code imports from those modules.
"""

from __future__ import annotations

from .figures.blame_grid import MAX_VALUES_SHOWN, BlameCell, as_picture, blame_figure, default_to_image
from .figures.data_map import data_map_figure
from .figures.sample_report import make_sample_report, run_dynamics

__all__ = [
    "MAX_VALUES_SHOWN",
    "BlameCell",
    "as_picture",
    "blame_figure",
    "data_map_figure",
    "default_to_image",
    "make_sample_report",
    "run_dynamics",
]
