"""The margin pass's one-pass `(δ, ℓ)` equals the separate functions, and validates like them."""

import pytest
import torch

from lightning_stability import theory


def test_margins_and_cross_entropy_equal_the_separate_functions():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 7, generator=generator) * 5
    targets = torch.randint(0, 7, (500,), generator=generator)
    margins, losses = theory.margins_and_cross_entropy(logits, targets)
    assert torch.equal(margins, theory.margins(logits, targets))
    assert torch.equal(losses, theory.per_sample_cross_entropy(logits, targets))
    assert margins.dtype == losses.dtype == torch.float64


def test_margins_and_cross_entropy_reject_bad_input():
    with pytest.raises(ValueError, match="logits"):
        theory.margins_and_cross_entropy(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="targets"):
        theory.margins_and_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3]))
