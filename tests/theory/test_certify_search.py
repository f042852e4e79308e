"""`certify` skips the Condition B bracket of windows that cannot hold the best Theorem B candidate (§7): the
result must equal the exhaustive search that brackets every window, on trained-classifier-shaped margins."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_stability import theory
from lightning_stability.theory import certificate


def exhaustive(sorted_margins, num_classes, grid, candidates, search_size):
    """Every window bracketed, every candidate bounded: the search before the pruning."""
    for row in candidates:
        spacing = None if grid.centre_spacing_fraction is None else grid.centre_spacing_fraction * row["min_width"]
        bracket = certificate.condition_b_constant(
            sorted_margins,
            grid.dilation,
            max_mass=row["zeta"],
            min_width=row["min_width"],
            min_cluster_mass=row["min_cluster_mass"],
            window_end=row["eta0"],
            radius_ratio=grid.radius_ratio,
            centre_spacing=spacing,
        )
        row["kappa_lower"], row["kappa_upper"] = bracket.lower, bracket.upper
    return certificate._theorem_b_bounds(candidates, num_classes, search_size)


@pytest.mark.parametrize("seed", range(6))
def test_pruned_search_equals_the_exhaustive_one(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(seed)
    size = (300, 1000, 3000)[seed % 3]
    margins = torch.randn(size, generator=generator, dtype=torch.float64) * (1 + seed % 3) + 3
    tail = size // 50 * (seed % 2)
    if tail:
        margins[:tail] = -torch.rand(tail, generator=generator, dtype=torch.float64)
    calls = {"brackets": 0}
    original = certificate.condition_b_constant

    def counted(*args, **kwargs):
        calls["brackets"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(certificate, "condition_b_constant", counted)
    pruned = theory.certify(margins, 10, loss=0.1)
    pruned_calls = calls["brackets"]
    monkeypatch.setattr(certificate, "_theorem_b_search", exhaustive)
    full = theory.certify(margins, 10, loss=0.1)
    assert pruned.theorem_b == full.theorem_b and pruned.theorem_a == full.theorem_a
    assert math.isfinite(pruned.theorem_b.envelope_bound)
    # the exhaustive search brackets every window once per candidate (one per τ of the grid)
    windows = (calls["brackets"] - pruned_calls) // len(theory.CertificateGrid().tau_fractions)
    assert 1 <= pruned_calls < windows


@pytest.mark.parametrize("weighted", [False, True])
def test_a_presorted_distribution_gives_the_same_report(weighted: bool) -> None:
    """`certify(..., sorted_margins=SortedMargins(margins, weights))` (the monitor sorts once for certify and its
    quantiles) reports exactly what `certify` reports when it sorts itself."""
    generator = torch.Generator().manual_seed(3)
    margins = torch.cat([torch.rand(300, generator=generator) * 4 + 0.5, -torch.rand(12, generator=generator)])
    margins = margins.double()
    weights = torch.randint(0, 3, (312,), generator=generator).double() if weighted else None
    expected = theory.certify(margins, 5, weights=weights, loss=0.4, gammas=(1.0, 2.0))
    presorted = theory.SortedMargins(margins, weights)
    got = theory.certify(margins, 5, weights=weights, loss=0.4, sorted_margins=presorted, gammas=(1.0, 2.0))
    assert got.to_dict() == expected.to_dict()


def test_a_presorted_distribution_of_other_margins_is_refused() -> None:
    margins = torch.linspace(-0.5, 3.0, 40, dtype=torch.float64)
    expected = (
        "`sorted_margins` holds 30 margins but `margins` has 40; pass SortedMargins(margins, weights) of the same "
        "margins."
    )
    with pytest.raises(ValueError) as raised:
        theory.certify(margins, 3, sorted_margins=theory.SortedMargins(margins[:30]))
    assert str(raised.value) == expected
    with pytest.raises(ValueError) as raised:
        theory.certify(margins, 3, sorted_margins=margins)  # type: ignore[arg-type]
    assert (
        str(raised.value)
        == "`sorted_margins` must be a SortedMargins built from these margins and weights, got Tensor."
    )
