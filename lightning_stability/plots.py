"""Where the figures of this module went (kept so that ``lightning_stability.plots`` still imports):

* `envelope_figure`, `ENVELOPE_FIGURE_SIZE` — `lightning_stability.figures.envelope`;
* `report_figure`, `make_report`, `DYNAMICS_PANELS`, `DynamicsPanel`, `read_dynamics_scalars` —
  `lightning_stability.figures.report`;
* `instability_events`, `EVENT_LABEL` — `lightning_stability.check_events`;
* `witness_figure` — `lightning_stability.figures.data_check`;
* reading TensorBoard event files and the step → epoch map — `lightning_stability.tensorboard_events`.

New code imports from those modules.
"""

from __future__ import annotations

from .check_events import EVENT_LABEL, instability_events
from .figures.data_check import witness_figure
from .figures.envelope import ENVELOPE_FIGURE_SIZE, envelope_figure
from .figures.report import DYNAMICS_PANELS, make_report, read_dynamics_scalars, report_figure
from .figures.report import DynamicsPanel as DynamicsPanel  # importable here as before, not in ``__all__`` (as before)

__all__ = [
    "DYNAMICS_PANELS",
    "ENVELOPE_FIGURE_SIZE",
    "EVENT_LABEL",
    "envelope_figure",
    "instability_events",
    "make_report",
    "read_dynamics_scalars",
    "report_figure",
    "witness_figure",
]
