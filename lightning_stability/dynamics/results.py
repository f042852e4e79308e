"""The result dataclasses of the training-dynamics kernels (docs/dynamics.md D1, D2)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

__all__ = ["EigenEstimate", "ParametrizationStats"]


@dataclass(frozen=True)
class EigenEstimate:
    """An eigenvalue estimate ``value`` with its vector ``v`` and relative ``residual`` ``‖H v − value·v‖ / |value|``.

    ``products`` counts the operator applications, ``converged`` says whether the tolerance was met before the
    iteration cap, ``shift`` is the ``s`` of ``H + s I`` that the final run iterated on (0 if none) and
    ``image_norm`` is ``‖H v‖`` (power iteration only).
    """

    value: float
    vector: Tensor
    products: int
    converged: bool
    residual: float
    shift: float = 0.0
    image_norm: float = math.nan


@dataclass(frozen=True)
class ParametrizationStats:
    """Statistics of one hidden layer (see `parametrization_statistics`); ``nan`` where undefined."""

    units: int
    dead: Tensor
    incoming_norms: Tensor
    outgoing_norms: Tensor
    balance: Tensor
    live: Tensor
    balance_min: float
    balance_max: float
    balance_spread: float
    max_cosine: float
    max_cosine_pair: tuple[int, int] | None
    min_cosine: float
    min_cosine_pair: tuple[int, int] | None
    parallel_pairs: int
    opposite_pairs: int
    zero_incoming: int
    zero_outgoing: int

    @property
    def dead_count(self) -> int:
        return int(self.dead.sum())

    @property
    def zero_units(self) -> int:
        """Units with a zero incoming or a zero outgoing norm."""
        return int(((self.incoming_norms == 0) | (self.outgoing_norms == 0)).sum())

    def to_metrics(self, prefix: str) -> dict[str, float]:
        """Scalars named ``{prefix}/{statistic}``."""
        values = {
            "units": float(self.units),
            "dead_units": float(self.dead_count),
            "dead_fraction": self.dead_count / self.units,
            "live_units": float(self.live.sum()),
            "balance_min": self.balance_min,
            "balance_max": self.balance_max,
            "balance_spread": self.balance_spread,
            "max_cosine": self.max_cosine,
            "min_cosine": self.min_cosine,
            "parallel_pairs": float(self.parallel_pairs),
            "opposite_pairs": float(self.opposite_pairs),
            "zero_units": float(self.zero_units),
            "zero_incoming": float(self.zero_incoming),
            "zero_outgoing": float(self.zero_outgoing),
        }
        return {f"{prefix}/{name}": value for name, value in values.items()}
