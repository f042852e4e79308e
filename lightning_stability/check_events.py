"""Which of a run's saved checks were instability events (docs/theory.md §8), read back offline from the content
of its margin files (`lightning_stability.files.load_margin_files`): what the report marks and the blame grid of
``lightning-stability report`` picks. No matplotlib, no Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import theory

__all__ = ["EVENT_LABEL", "instability_events"]


EVENT_LABEL = "loss fell while accuracy fell"
"""What an instability event is (docs/theory.md §8); the report's legend says it next to the markers."""


_INSTABILITY_KEYS = ("instability", "stability_events/instability", "stability/instability")
"""The monitor's own event flag, if a margin file's report holds it (it holds ``to_dict()`` today, without it;
``stability/instability`` is the name of earlier versions)."""


def instability_events(checks: Sequence[dict[str, Any]]) -> tuple[list[int], bool]:
    """The positions in ``checks`` of the instability events, and whether they were recomputed.

    A check is an event when its loss fell and its accuracy fell by more than ``tol`` since the previous check
    (docs/theory.md §8). Margin files store the monitor's own verdict (``instability``, decided with its ``tol``):
    if every check after the first holds it, it is used; files of earlier versions do not, and their events are
    recomputed from ``accuracy`` and ``loss`` with ``tol = 0`` (``recomputed`` is then ``True``).
    """
    if len(checks) > 1 and all("instability" in check for check in checks[1:]):  # the monitor's verdict, saved
        return [i for i, check in enumerate(checks) if i > 0 and float(check["instability"]) >= 0.5], False
    reports = [check["report"] for check in checks]
    for key in _INSTABILITY_KEYS:
        if len(reports) > 1 and all(key in report for report in reports[1:]):
            return [i for i, report in enumerate(reports) if i > 0 and report[key] >= 0.5], False
    events = []
    for i in range(1, len(reports)):
        values = [reports[j].get(key, math.nan) for j in (i - 1, i) for key in ("loss", "accuracy")]
        if all(math.isfinite(value) for value in values):
            previous_loss, previous_accuracy, loss, accuracy = values
            if theory.instability_event(previous_loss, previous_accuracy, loss, accuracy, 0.0):
                events.append(i)
    return events, True
