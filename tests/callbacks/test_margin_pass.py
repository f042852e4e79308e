"""The margin pass's MarginCollector against an implementation no one here wrote: aum's AUMCalculator records the
same margin δ."""

from __future__ import annotations

import torch
from aum import AUMCalculator

from lightning_stability import theory
from lightning_stability.callbacks.margin_pass import MarginCollector


def test_margins_equal_aum_records(tmp_path):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3000, 10, generator=generator) * 4
    targets = torch.randint(0, 10, (3000,), generator=generator)
    logits[:5, 3] = logits[:5, 7]  # exact ties between two scores (margin 0 when one of them is the label)
    targets[:5] = 3
    calculator = AUMCalculator(str(tmp_path), compressed=True)
    collector = MarginCollector()
    records = {}
    for start in range(0, 3000, 128):
        batch = slice(start, start + 128)
        indices = torch.arange(3000)[batch]
        records.update(calculator.update(logits[batch], targets[batch], indices.tolist()))
        collector.update(
            indices,
            targets[batch],
            theory.margins(logits[batch], targets[batch]),
            theory.per_sample_cross_entropy(logits[batch], targets[batch]),
        )
    ours = collector.compute()["margins"]
    theirs = torch.tensor([records[index].margin for index in range(3000)], dtype=torch.float64)
    assert float((ours - theirs).abs().max()) <= 1e-6
    assert bool((ours[:5] <= 0).all())
