"""docs/theory.md §11: subset estimates and their bounds, against code this project did not write (scipy's beta
quantile), against brute force on the expanded draws, and by simulation: over seeded repetitions of the draw the
bounds hold at least as often as their confidence says."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch
from scipy.stats import beta

from lightning_stability import theory

CONFIDENCE = 0.95


def exact_binomial_tail(successes: int, trials: int, p: float) -> Fraction:
    """``P(X ≥ successes)`` for ``X ~ Binomial(trials, p)`` in exact rationals (``p`` is a binary float)."""
    q = Fraction(p)
    return sum(
        (Fraction(math.comb(trials, i)) * q**i * (1 - q) ** (trials - i) for i in range(successes, trials + 1)),
        Fraction(0),
    )


@pytest.mark.parametrize(("successes", "trials"), [(1, 1), (1, 10), (7, 10), (9, 10), (10, 10), (37, 50), (180, 200)])
def test_clopper_pearson_is_the_beta_quantile_and_never_above_it(successes: int, trials: int) -> None:
    ours = theory.clopper_pearson_lower(successes, trials, CONFIDENCE)
    reference = float(beta.ppf(1 - CONFIDENCE, successes, trials - successes + 1))
    assert ours == pytest.approx(reference, abs=1e-12)
    alpha = Fraction(1) - Fraction(CONFIDENCE)
    if trials <= 50:  # exact: the tail at p_L is at most α (a valid bound), just above p_L it exceeds α (tight)
        assert exact_binomial_tail(successes, trials, ours) <= alpha
        assert exact_binomial_tail(successes, trials, ours + 1e-9) > alpha


def test_clopper_pearson_edge_cases_and_refusals() -> None:
    assert theory.clopper_pearson_lower(0, 25, CONFIDENCE) == 0.0
    assert theory.clopper_pearson_lower(25, 25, CONFIDENCE) < 0.05 ** (1 / 25) + 1e-15
    assert theory.clopper_pearson_lower(25, 25, 0.5) > theory.clopper_pearson_lower(25, 25, 0.99)
    for bad in (
        (26, 25, CONFIDENCE),
        (-1, 25, CONFIDENCE),
        (3, 0, CONFIDENCE),
        (3, 25, 1.0),
        (3, 25, 0.0),
        (3, 25, True),
    ):
        with pytest.raises(ValueError, match=r"`(successes|trials|confidence)`"):
            theory.clopper_pearson_lower(*bad)


def test_dkw_epsilon_is_massarts_constant() -> None:
    for trials, confidence in ((1, 0.9), (100, 0.95), (5000, 0.99)):
        epsilon = theory.dkw_epsilon(trials, confidence)
        assert 2 * math.exp(-2 * trials * epsilon**2) == pytest.approx(1 - confidence, rel=1e-12)


def brute_quantile(expanded: list[float], level: float) -> float:
    """``min{x : #{draws ≤ x} ≥ level · n}`` by scanning the sorted expanded draws."""
    if level <= 0:
        return -math.inf
    if level > 1:
        return math.inf
    ordered = sorted(expanded)
    for position, value in enumerate(ordered, start=1):
        if position >= level * len(ordered) * (1 - 1e-12):
            return value
    return ordered[-1]


@pytest.mark.parametrize("seed", range(6))
def test_quantile_band_by_brute_force_on_the_expanded_draws(seed: int) -> None:
    rng = random.Random(seed)
    values = [
        rng.choice([-1.5, -0.25, 0.0, 0.5, 2.0, 3.25, 4.0]) + rng.randint(0, 3) for _ in range(rng.randint(1, 30))
    ]
    unique = sorted(set(values))
    counts = [rng.randint(1, 5) for _ in unique]
    expanded = [v for v, c in zip(unique, counts, strict=True) for _ in range(c)]
    levels = (0.01, 0.05, 0.25, 0.5, 0.9, 1.0)
    band = theory.quantile_band(torch.tensor(unique, dtype=torch.float64), torch.tensor(counts), levels, 0.9)
    epsilon = math.sqrt(math.log(2 / 0.1) / (2 * len(expanded)))
    for level in levels:
        lower, value, upper = band[level]
        assert value == brute_quantile(expanded, level)
        assert lower <= brute_quantile(expanded, level - epsilon)
        assert upper >= brute_quantile(expanded, level + epsilon)
        assert lower <= value <= upper


def test_draw_subset_is_seeded_leaves_the_global_rng_alone_and_follows_the_weights() -> None:
    weights = torch.tensor([1.0, 0.0, 3.0, 4.0], dtype=torch.float64)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    indices, counts = theory.draw_subset(weights, 80_000, seed=7)
    assert torch.equal(torch.rand(1), before)  # the global stream is where it was
    again = theory.draw_subset(weights, 80_000, seed=7)
    assert torch.equal(indices, again[0]) and torch.equal(counts, again[1])
    assert indices.tolist() == [0, 2, 3] and int(counts.sum()) == 80_000
    for count, weight in zip(counts.tolist(), (1 / 8, 3 / 8, 4 / 8), strict=True):
        sd = math.sqrt(80_000 * weight * (1 - weight))
        assert abs(count - 80_000 * weight) < 5 * sd
    with pytest.raises(ValueError, match="`size`"):
        theory.draw_subset(weights, 0, seed=0)
    with pytest.raises(ValueError, match="`weights`"):
        theory.draw_subset(-weights, 5, seed=0)


def population(size: int, seed: int) -> torch.Tensor:
    """Margins shaped like a trained classifier's: a wide positive bulk and a negative tail (accuracy ≈ 0.9)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, generator=generator, dtype=torch.float64) * 1.6 + 2.1


@pytest.mark.parametrize("weighted", [False, True], ids=["uniform", "weighted"])
def test_the_bounds_cover_the_full_set_values_in_at_least_the_confidence_share_of_draws(weighted: bool) -> None:
    """Coverage by simulation (issue 15): 400 seeded draws of n = 150 from a population of 3,000 margins; the
    Clopper–Pearson bound is below the true μ-accuracy, the DKW band contains the true μ-CDF everywhere, and
    every quantile band contains the true quantile, each in ≥ 95 % of the draws."""
    margins = population(3000, 0)
    weights = torch.ones(3000, dtype=torch.float64)
    if weighted:
        weights[margins < 1] = 4.0  # μ favours the hard samples
    mu = weights / weights.sum()
    true_accuracy = float(mu[margins > 0].sum())
    order = torch.argsort(margins)
    sorted_margins, true_cdf = margins[order], torch.cumsum(mu[order], dim=0)
    levels = (0.01, 0.05, 0.5)
    true_quantiles = {
        q: float(
            sorted_margins[int(torch.searchsorted(true_cdf, torch.tensor([q * (1 - 1e-12)], dtype=torch.float64)))]
        )
        for q in levels
    }
    covered = {"accuracy": 0, "cdf": 0, "quantiles": 0}
    repetitions = 400
    for seed in range(repetitions):
        indices, counts = theory.draw_subset(weights, 150, seed=seed)
        estimate = theory.subset_estimate(margins[indices], counts, confidence=CONFIDENCE, levels=levels)
        covered["accuracy"] += estimate.accuracy_lower <= true_accuracy
        drawn = margins[indices]
        # F_n at every population margin (F and F_n jump only there, so the sup is attained there)
        drawn_order = torch.argsort(drawn)
        cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(counts[drawn_order], 0) / 150])
        empirical = cumulative[torch.searchsorted(drawn[drawn_order], sorted_margins, right=True)]
        covered["cdf"] += float((empirical - true_cdf).abs().max()) <= estimate.dkw_epsilon
        covered["quantiles"] += all(
            estimate.quantiles[q][0] <= true_quantiles[q] <= estimate.quantiles[q][2] for q in levels
        )
    for name, hits in covered.items():
        assert hits / repetitions >= CONFIDENCE, (name, hits)


def test_subset_estimate_counts_draws_not_distinct_samples() -> None:
    margins = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    estimate = theory.subset_estimate(margins, torch.tensor([1, 2, 7]), confidence=0.9, levels=(0.5,))
    assert (estimate.draws, estimate.distinct_samples) == (10, 3)
    assert estimate.accuracy == 0.7  # a margin of exactly 0 is an error
    assert estimate.accuracy_lower == pytest.approx(float(beta.ppf(0.1, 7, 4)), abs=1e-12)
    assert estimate.quantiles[0.5][1] == 2.0
    logged = estimate.to_dict()
    assert logged["accuracy_lower"] == estimate.accuracy_lower and "margin_quantile/q_0.5" in logged
    with pytest.raises(ValueError, match="`counts`"):
        theory.subset_estimate(margins, torch.tensor([1, 0, 7]), confidence=0.9)
