"""The statistical mode's subset: ``n`` training indices drawn once, kept in checkpoints (docs/cost.md).

``StabilityMonitor(subset_size=n, confidence=1 − α, full_every_n_epochs=m)`` draws ``n`` training indices once,
independently with replacement from ``μ`` (`lightning_stability.theory.draw_subset`, its own seeded generator),
and at every check of an epoch that is not a full one evaluates only the distinct drawn samples — ``n / N`` of
the cost of a full pass. What such a check logs under ``stability_estimate/`` (docs/theory.md §11) is assessed by
`lightning_stability.assess.check.assess_subset`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import theory
from ..distributions import MisconfigurationError

__all__ = ["SubsetDraw", "check_subset_options"]


class SubsetDraw:
    """The drawn subset of a `StabilityMonitor` in statistical mode.

    Args:
        size: ``n``, the number of draws.
        full_every_n_epochs: run the exact full check after every m-th epoch instead (``None``: never).
        seed: seed of the draw.
    """

    def __init__(self, size: int, full_every_n_epochs: int | None, seed: int) -> None:
        self.size, self.seed = size, seed
        self.full_every_n_epochs = full_every_n_epochs
        self.indices: Tensor | None = None
        self.counts: Tensor | None = None

    def is_full(self, epoch: int) -> bool:
        """Whether the check of ``epoch`` is the exact full one (never the check before training, ``epoch = −1``)."""
        every = self.full_every_n_epochs
        return every is not None and epoch >= 0 and (epoch + 1) % every == 0

    def draw(self, num_samples: int, weights: Tensor | None) -> tuple[Tensor, Tensor]:
        """The drawn indices (ascending) and their draw counts; drawn at the first call, from ``μ = weights``."""
        if self.indices is not None and self.counts is not None:
            if int(self.indices.max()) >= num_samples:
                raise MisconfigurationError(
                    f"StabilityMonitor: the checkpoint's subset reaches sample {int(self.indices.max())} but the "
                    f"training data has {num_samples} samples; resume with the same training data."
                )
            return self.indices, self.counts
        mu = torch.ones(num_samples, dtype=torch.float64) if weights is None else weights
        if mu.shape != (num_samples,):
            raise MisconfigurationError(
                f"StabilityMonitor: `weights` has {mu.numel()} entries but the training data has {num_samples} "
                "samples; pass one weight per training sample."
            )
        self.indices, self.counts = theory.draw_subset(mu, self.size, self.seed)
        return self.indices, self.counts

    def metric_period(self, name: str, every_n_epochs: int) -> int | None:
        """``p`` if the metric ``name`` is logged after exactly the epochs ``p − 1, 2p − 1, …`` in the statistical
        mode: the exact values (``stability/…``) after every ``lcm(every_n_epochs, full_every_n_epochs)``-th epoch
        (never without ``full_every_n_epochs``), the estimates (``stability_estimate/…``) after the other checked
        epochs (a fixed period only without full checks), the cost after every check."""
        full = self.full_every_n_epochs
        if name.startswith("stability_cost/"):
            return every_n_epochs
        if name.startswith("stability_estimate/"):
            return every_n_epochs if full is None else None
        return None if full is None else math.lcm(every_n_epochs, full)

    def schedule(self, every_n_epochs: int) -> str:
        """In words, when the statistical mode logs what (for error messages)."""
        return (
            f"subset_size={self.size}, every_n_epochs={every_n_epochs}, full_every_n_epochs="
            f"{self.full_every_n_epochs}: exact values after the full checks only, estimates after the other checks"
        )

    def counts_of(self, indices: Tensor) -> Tensor:
        """The draw counts of the samples ``indices`` (a pass over the drawn samples, sorted by index)."""
        assert self.indices is not None and self.counts is not None
        return self.counts[torch.searchsorted(self.indices, indices)]

    def state_dict(self) -> dict[str, Any]:
        return {"indices": self.indices, "counts": self.counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.indices, self.counts = state["indices"], state["counts"]


def check_subset_options(
    subset_size: int | None, confidence: float, full_every_n_epochs: int | None, weights: Any
) -> None:
    """Validate the statistical mode's options at construction (raise `MisconfigurationError` with the fix);
    ``confidence`` is checked even without ``subset_size`` (a wrong value is wrong whether or not it is used)."""
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise MisconfigurationError(
            f"StabilityMonitor: `confidence` must lie in (0, 1), e.g. 0.95; got {confidence!r}."
        )
    if subset_size is None:
        if full_every_n_epochs is not None:
            raise MisconfigurationError(
                "StabilityMonitor: `full_every_n_epochs` only applies with `subset_size=`; every check is full "
                "without it."
            )
        return
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 1:
        raise MisconfigurationError(f"StabilityMonitor: `subset_size` must be a positive integer, got {subset_size!r}.")
    if full_every_n_epochs is not None and (
        isinstance(full_every_n_epochs, bool) or not isinstance(full_every_n_epochs, int) or full_every_n_epochs < 1
    ):
        raise MisconfigurationError(
            f"StabilityMonitor: `full_every_n_epochs` must be a positive integer or None, got {full_every_n_epochs!r}."
        )
    if isinstance(weights, str) and weights == "balanced":
        raise MisconfigurationError(
            "StabilityMonitor: `weights='balanced'` needs every label before the subset can be drawn; with "
            "`subset_size=` pass the weights as a tensor (e.g. 1 / class count of each sample's label)."
        )
