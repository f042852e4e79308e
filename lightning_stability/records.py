"""The typed records a check hands from one step to the next (docs/design.md): no Lightning, no behaviour.

* `MarginPass` — what the margin pass of a check collected, per sample, sorted by sample index;
* `BlameSets` and `BLAME_SETS` — the samples a check blames, and the schema of the per-check file's ``blame``
  entry that the report and the ``samples`` command read back; `SMALLEST_MARGINS` — how the file's ``blame_cells``
  cut a set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "BLAME_SETS",
    "CAUSES_FIRST",
    "SMALLEST_MARGINS",
    "BlameSets",
    "MarginPass",
]


@dataclass(frozen=True)
class MarginPass:
    """Per-sample results of one margin pass, sorted by sample index: float64 margins and cross entropies (the
    probability the model gives the true class is ``exp(−loss)``), and the predicted class (the first index of the
    largest logit; a sample is counted correct only when its margin is positive, so a tie is an error even if the
    target comes first)."""

    indices: Tensor
    targets: Tensor
    margins: Tensor
    losses: Tensor
    predicted: Tensor
    num_classes: int
    non_finite: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    """Samples left out because their class scores were not finite (NaN or ±inf), by index."""
    ignored: int = 0
    """Samples outside the certified set: labelled ``ignore_index`` or of weight zero."""


BLAME_SETS = {
    "forgotten": "forgotten since the previous check",
    "worst": "worst margins",
    "witness": "Condition B witness interval",
    "data_cluster": "isolated input cluster (data check)",
}
"""The blame sets of a check: key in the per-check file -> its title there."""

CAUSES_FIRST = ("worst", "witness", "data_cluster", "forgotten")
"""The order every view shows the blame sets in: the samples that cause an instability (smallest margins, the
Condition B witness, the isolated input cluster) before the samples it cost (flipped to wrong)."""

SMALLEST_MARGINS = "smallest margins"
"""The ``picked`` entry of a set's ``blame_cells`` in a per-check file: its cells are the set's ``blame_size``
smallest margins, smallest first, equal margins by index (files of earlier versions have no ``picked``: their cells
are the set's first ``blame_size`` indices, the ``worst`` set's being its smallest margins all the same)."""


@dataclass(frozen=True)
class BlameSets:
    """The blame sets of one check, as sample indices (see `BLAME_SETS`): ``forgotten`` and ``witness`` sorted by
    index, ``worst`` by margin (smallest first). Each set is whole except ``worst`` (its ``blame_size`` samples);
    a grid or table that shows at most ``blame_size`` of a set shows its smallest margins (most wrong first)."""

    forgotten: Tensor
    worst: Tensor
    witness: Tensor
    data_cluster: Tensor

    def as_dict(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in BLAME_SETS}
