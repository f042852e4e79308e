r"""Estimates from a random subset of the training samples, with their confidence bounds (docs/theory.md §11).

A subset of ``n`` indices is drawn **independently with replacement from μ** (`draw_subset`), once, with its own
seeded generator, so it does not depend on the parameters it is later evaluated at. For fixed parameters the
drawn margins are then ``n`` i.i.d. samples of the margin distribution ``F`` of §1, and:

* the number of drawn samples with ``δ > 0`` is Binomial(``n``, ``A``), ``A = μ(δ > 0)`` the training accuracy,
  so the exact one-sided Clopper–Pearson bound (`clopper_pearson_lower`) satisfies
  ``P(A ≥ A_lower) ≥ 1 − α``;
* the Dvoretzky–Kiefer–Wolfowitz inequality with Massart's constant, ``P(sup_x |F_n(x) − F(x)| > ε) ≤ 2e^{−2nε²}``,
  gives the band ``ε = sqrt(log(2/α) / (2n))`` (`dkw_epsilon`); on it every quantile satisfies
  ``Q_n(q − ε) ≤ Q(q) ≤ Q_n(q + ε)`` (`quantile_band`), where ``Q(q) = min{x : F(x) ≥ q}``.

Each statement holds with probability ``≥ 1 − α`` over the draw, for the parameters of one check; not jointly
for several checks or several statements (a union bound would divide ``α`` among them). The floors of
`lightning_stability.theory.certify` computed on the subset's empirical measure are point estimates: no
guarantee for the whole training set is claimed for them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .results import SubsetEstimate
from .validation import check_values

__all__ = [
    "clopper_pearson_lower",
    "dkw_epsilon",
    "draw_subset",
    "quantile_band",
    "subset_estimate",
]


def _check_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be a number in (0, 1), e.g. 0.95; got {confidence!r}.")
    return float(confidence)


def _check_trials(trials: int) -> int:
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"`trials` must be a positive integer, got {trials!r}.")
    return trials


def _log_binomial_tail(successes: int, trials: int, p: float) -> float:
    """``log P(X ≥ successes)`` for ``X ~ Binomial(trials, p)``, ``0 < p < 1``, summed in log space (float64)."""
    i = torch.arange(successes, trials + 1, dtype=torch.float64)
    log_pmf = (
        math.lgamma(trials + 1)
        - torch.lgamma(i + 1)
        - torch.lgamma(trials - i + 1)
        + i * math.log(p)
        + (trials - i) * math.log1p(-p)
    )
    return float(torch.logsumexp(log_pmf, dim=0))


def clopper_pearson_lower(successes: int, trials: int, confidence: float) -> float:
    r"""The exact one-sided Clopper–Pearson lower bound ``p_L`` for a binomial proportion (docs/theory.md §11).

    ``p_L = 0`` if ``successes = 0``, otherwise the ``p`` with ``P(X ≥ successes) = α`` for
    ``X ~ Binomial(trials, p)``, ``α = 1 − confidence`` (the ``α``-quantile of Beta(``successes``,
    ``trials − successes + 1``)). Found by bisection on ``p`` to ``2^{-50}`` and rounded down, so the returned
    value never exceeds the exact bound: ``P(p ≥ p_L) ≥ confidence`` for every true ``p``.

    >>> round(clopper_pearson_lower(10, 10, 0.95), 6)  # α^{1/n} when every trial succeeds
    0.741134
    """
    trials = _check_trials(trials)
    if isinstance(successes, bool) or not isinstance(successes, int) or not 0 <= successes <= trials:
        raise ValueError(f"`successes` must be an integer in [0, trials] = [0, {trials}], got {successes!r}.")
    alpha = 1.0 - _check_confidence(confidence)
    if successes == 0:
        return 0.0
    if successes == trials:  # P(X = n) = p^n = α in closed form; one ulp down keeps it below the exact bound
        return math.nextafter(alpha ** (1.0 / trials), 0.0)
    log_alpha, low, high = math.log(alpha), 0.0, 1.0
    for _ in range(50):  # P(X ≥ k) increases in p: keep P(X ≥ k | low) ≤ α
        middle = (low + high) / 2
        if middle <= 0.0 or middle >= 1.0:
            break
        if _log_binomial_tail(successes, trials, middle) <= log_alpha:
            low = middle
        else:
            high = middle
    return low


def dkw_epsilon(trials: int, confidence: float) -> float:
    r"""The half-width ``ε = sqrt(log(2/α) / (2n))`` of the Dvoretzky–Kiefer–Wolfowitz band (Massart's constant):
    ``P(sup_x |F_n(x) − F(x)| > ε) ≤ α`` for the empirical CDF ``F_n`` of ``n`` i.i.d. draws (docs/theory.md §11).

    >>> round(dkw_epsilon(5000, 0.95), 6)
    0.019206
    """
    trials = _check_trials(trials)
    alpha = 1.0 - _check_confidence(confidence)
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * trials))


def draw_subset(weights: Tensor, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """``size`` indices drawn independently with replacement with probabilities ``weights / Σ weights``, from a
    generator seeded with ``seed`` (the global RNG is never touched); returned as ``(unique indices ascending,
    how often each was drawn)``. The counts sum to ``size``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"`size` must be a positive integer, got {size!r}.")
    weights = check_values(weights, "weights")
    if bool((weights < 0).any()) or float(weights.sum()) <= 0:
        raise ValueError("`weights` must be nonnegative with a positive sum.")
    generator = torch.Generator().manual_seed(int(seed))
    drawn = torch.multinomial(weights.cpu(), size, replacement=True, generator=generator)
    return torch.unique(drawn, sorted=True, return_counts=True)


def _empirical_quantile(
    sorted_values: Tensor, cumulative_counts: Tensor, total: int, level: float, outward: int = 0
) -> float:
    """``Q_n(level) = min{x : F_n(x) ≥ level}`` (−inf for ``level ≤ 0``, +inf for ``level > 1``). ``outward = −1``
    (``+1``) lowers (raises) the level by a relative ``1e-12`` first, so that rounding of ``level · n`` can only
    move a lower (upper) bound outwards."""
    level *= 1 + outward * 1e-12
    if level <= 0:
        return -math.inf
    if level > 1:
        return math.inf
    needed = torch.tensor([level * total], dtype=torch.float64)
    position = int(torch.searchsorted(cumulative_counts.to(torch.float64), needed))
    return float(sorted_values[min(position, sorted_values.numel() - 1)])


def quantile_band(
    margins: Tensor, counts: Tensor, levels: tuple[float, ...], confidence: float
) -> dict[float, tuple[float, float, float]]:
    r"""For each level ``q``: ``(Q_n(q − ε), Q_n(q), Q_n(q + ε))`` with the DKW ``ε`` of ``n = Σ counts`` draws
    (docs/theory.md §11). With probability ``≥ confidence`` over the draw, ``F`` lies within ``ε`` of ``F_n``
    everywhere, and then every true quantile ``Q(q)`` lies between the first and the last value (−inf / +inf
    where ``q ∓ ε`` leaves ``(0, 1]``)."""
    values = check_values(margins)
    if counts.shape != values.shape or counts.is_floating_point() or bool((counts < 1).any()):
        raise ValueError("`counts` must be positive integers, one per margin.")
    total = int(counts.sum())
    epsilon = dkw_epsilon(total, confidence)
    order = torch.argsort(values, stable=True)
    sorted_values, cumulative = values[order], torch.cumsum(counts[order], dim=0)
    band = {}
    for level in levels:
        if not 0 < level <= 1:
            raise ValueError(f"quantile levels must lie in (0, 1], got {level!r}.")
        band[level] = (
            _empirical_quantile(sorted_values, cumulative, total, level - epsilon, outward=-1),
            _empirical_quantile(sorted_values, cumulative, total, level),
            _empirical_quantile(sorted_values, cumulative, total, level + epsilon, outward=1),
        )
    return band


def subset_estimate(
    margins: Tensor, counts: Tensor, *, confidence: float, levels: tuple[float, ...] = (0.01, 0.05, 0.5)
) -> SubsetEstimate:
    """The §11 estimates of one check from the drawn samples' margins and draw counts: the accuracy (fraction of
    draws with ``δ > 0``) with its Clopper–Pearson lower bound, the DKW ``ε`` and the quantile band."""
    values = check_values(margins)
    if counts.shape != values.shape or counts.is_floating_point() or bool((counts < 1).any()):
        raise ValueError("`counts` must be positive integers, one per margin.")
    draws = int(counts.sum())
    correct = int(counts[values > 0].sum())
    return SubsetEstimate(
        draws=draws,
        distinct_samples=int(values.numel()),
        confidence=_check_confidence(confidence),
        accuracy=correct / draws,
        accuracy_lower=clopper_pearson_lower(correct, draws, confidence),
        dkw_epsilon=dkw_epsilon(draws, confidence),
        quantiles=quantile_band(values, counts, levels, confidence),
    )
