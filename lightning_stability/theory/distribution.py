"""Margins, per-sample cross entropy and the weighted margin distribution (docs/theory.md §1).

All functions return float64 results on the input's device. Weights ``μ`` default to ``1/N``; a weight
tensor is validated and normalised to sum to one. Samples of weight zero carry no mass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .validation import check_finite_number, check_logits_and_targets, check_values, normalised_weights

__all__ = [
    "SortedMargins",
    "accuracy",
    "bad_mass",
    "good_mass",
    "margin_cdf",
    "margins",
    "margins_and_cross_entropy",
    "per_sample_cross_entropy",
]


def margins(logits: Tensor, targets: Tensor) -> Tensor:
    r"""Margin of every sample, ``δ_k = z_{k,y_k} − max_{j≠y_k} z_{k,j}`` (docs/theory.md §1).

    ``δ_k > 0`` iff sample ``k`` is classified correctly; a tie (``δ_k = 0``) counts as misclassified.

    Args:
        logits: ``[N, K]`` class scores before softmax, ``K >= 2``, all finite.
        targets: ``[N]`` integer labels in ``[0, K)``.

    Returns:
        ``[N]`` float64 tensor on the logits' device.
    """
    check_logits_and_targets(logits, targets)
    scores = logits.to(torch.float64)
    index = targets.long().unsqueeze(1)
    true_score = scores.gather(1, index).squeeze(1)
    others = scores.scatter(1, index, float("-inf"))
    return true_score - others.amax(dim=1)


def per_sample_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    r"""Cross entropy ``ℓ_k = logsumexp_j z_{k,j} − z_{k,y_k}`` of every sample, float64 (docs/theory.md §1)."""
    check_logits_and_targets(logits, targets)
    scores = logits.to(torch.float64)
    return torch.logsumexp(scores, dim=1) - scores.gather(1, targets.long().unsqueeze(1)).squeeze(1)


def margins_and_cross_entropy(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(δ_k, ℓ_k)`` of every sample in one validated pass (the margin pass's per-batch work).

    Same values as `margins` and `per_sample_cross_entropy`: ``δ_k = z_{k,y_k} − max_{j≠y_k} z_{k,j}``,
    ``ℓ_k = logsumexp_j z_{k,j} − z_{k,y_k}``, float64.
    """
    check_logits_and_targets(logits, targets)
    scores = logits.to(torch.float64)
    index = targets.long().unsqueeze(1)
    true_score = scores.gather(1, index).squeeze(1)
    others = scores.scatter(1, index, float("-inf"))
    return true_score - others.amax(dim=1), torch.logsumexp(scores, dim=1) - true_score


class SortedMargins:
    """Margins sorted ascending with cumulative weights, for exact ``F`` and mass queries in ``O(log N)``.

    ``F(x) = μ({k : δ_k ≤ x})`` is read off ``cumulative[searchsorted(values, x, right=True) − 1]``.
    Samples of weight zero are dropped: every quantity of docs/theory.md depends only on the measure ``μ``.
    """

    def __init__(self, values: Tensor, weights: Tensor | None = None, *, name: str = "margins") -> None:
        values = check_values(values, name)
        mu = normalised_weights(weights, values.shape[0], values.device)
        keep = mu > 0
        order = torch.argsort(values[keep], stable=True)
        self.indices: Tensor = keep.nonzero().squeeze(1)[order]
        """Positions in the caller's tensor of the sorted (positive-weight) values."""
        self.values: Tensor = values[keep][order]
        self.weights: Tensor = mu[keep][order]
        if weights is None:  # exact counts / N: masses of small clusters keep full relative precision
            cumulative = torch.arange(1, len(self.values) + 1, dtype=torch.float64, device=values.device)
        else:
            # cumulate the caller's weights, then normalise: integer-valued weights (e.g. all ones) give the same
            # exact k/N masses as `weights=None`, so the grids of `certify` pick the same quantiles
            raw = weights.to(device=values.device, dtype=torch.float64)
            cumulative = torch.cumsum(raw[keep][order], dim=0)
        # divide by the total so that F(max δ) is exactly 1 and F stays nondecreasing despite rounding
        self.cumulative: Tensor = cumulative / cumulative[-1]
        self._padded = torch.cat([self.cumulative.new_zeros(1), self.cumulative])  # F just below each value
        self.size: int = values.shape[0]
        """How many margins were given, those of weight zero included."""
        self._cdf_at_values: Tensor | None = None

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def minimum(self) -> float:
        return float(self.values[0])

    def cdf_at_values(self) -> Tensor:
        """``F(δ_(i))`` at every sorted value, ties included (the weight after the last tied value)."""
        if self._cdf_at_values is None:
            self._cdf_at_values = self.cdf(self.values)
        return self._cdf_at_values

    def cdf(self, x: Tensor) -> Tensor:
        """``F(x) = μ(δ ≤ x)`` for a tensor of points."""
        count = torch.searchsorted(self.values, x.to(self.values).contiguous(), right=True)
        return self._padded[count]

    def mass_below(self, x: Tensor) -> Tensor:
        """``μ(δ < x)`` for a tensor of points."""
        count = torch.searchsorted(self.values, x.to(self.values).contiguous(), right=False)
        return self._padded[count]

    def interval_mass(self, low: Tensor, high: Tensor) -> Tensor:
        """``μ([low, high])`` of closed intervals (0 when ``low > high``)."""
        return (self.cdf(high) - self.mass_below(low)).clamp_min(0.0)

    def quantile_value(self, level: float) -> float:
        """Smallest margin ``v`` with ``F(v) >= level`` (``level`` in (0, 1]).

        The comparison allows ``1e-9`` relative slack, so that rounding of the cumulative weights (``N`` ones vs.
        ``None``, scaled weights) never moves the choice across a value where ``F`` equals ``level`` exactly.
        """
        target = torch.tensor([level * (1 - 1e-9)], dtype=torch.float64, device=self.cumulative.device)
        position = int(torch.searchsorted(self.cumulative, target))
        return float(self.values[min(position, len(self) - 1)])


def _points(eta: float | Tensor, name: str) -> tuple[Tensor, bool]:
    if isinstance(eta, Tensor):
        if not bool(torch.isfinite(eta).all()):
            raise ValueError(f"`{name}` must be finite.")
        return eta.to(torch.float64).reshape(-1), False
    return torch.tensor([check_finite_number(eta, name)], dtype=torch.float64), True


def margin_cdf(margins: Tensor, x: float | Tensor, weights: Tensor | None = None) -> float | Tensor:
    """Margin distribution ``F(x) = μ({k : δ_k ≤ x})`` at a point (float) or at a tensor of points."""
    sorted_margins = SortedMargins(margins, weights)
    points, scalar = _points(x, "x")
    result = sorted_margins.cdf(points.to(sorted_margins.values.device))
    return float(result[0]) if scalar else result


def good_mass(margins: Tensor, eta: float | Tensor, weights: Tensor | None = None) -> float | Tensor:
    """Mass of the good set ``μ(G_η) = μ({k : δ_k > η}) = 1 − F(η)`` (docs/theory.md §1)."""
    sorted_margins = SortedMargins(margins, weights)
    points, scalar = _points(eta, "eta")
    result = 1.0 - sorted_margins.cdf(points.to(sorted_margins.values.device))
    return float(result[0]) if scalar else result


def bad_mass(margins: Tensor, eta: float | Tensor, weights: Tensor | None = None) -> float | Tensor:
    """Mass of the bad set ``μ(B_η) = μ({k : δ_k < −η})`` (docs/theory.md §1)."""
    sorted_margins = SortedMargins(margins, weights)
    points, scalar = _points(eta, "eta")
    result = sorted_margins.mass_below(-points.to(sorted_margins.values.device))
    return float(result[0]) if scalar else result


def accuracy(margins: Tensor, weights: Tensor | None = None) -> float:
    """Weighted accuracy ``A = μ(G_0) = μ({k : δ_k > 0})``; ties count as errors."""
    values = check_values(margins)
    mu = normalised_weights(weights, values.shape[0], values.device)
    return float((mu * (values > 0)).sum())
