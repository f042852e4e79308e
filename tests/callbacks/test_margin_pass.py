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
            logits[batch].argmax(dim=1),
        )
    ours = collector.compute()["margins"]
    theirs = torch.tensor([records[index].margin for index in range(3000)], dtype=torch.float64)
    assert float((ours - theirs).abs().max()) <= 1e-6
    assert bool((ours[:5] <= 0).all())


def test_run_margin_pass_records_the_predicted_class_per_sample() -> None:
    """``predicted`` is the first index of the largest logit, computed here by a Python loop over the rows; a tie
    between the label and another class gives margin 0 (an error) even when the label comes first."""
    from torch import nn

    from lightning_stability.callbacks.forward_output import default_forward
    from lightning_stability.callbacks.margin_loader import margin_dataloader
    from lightning_stability.callbacks.margin_pass import run_margin_pass

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(50, 4, generator=generator)
    y = torch.randint(0, 3, (50,), generator=generator)

    class TiedScores(nn.Module):  # class 2's score is a copy of class 0's: an exact tie on every sample
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 2)

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            scores = self.linear(inputs)
            return torch.cat([scores, scores[:, :1]], dim=1)

    model = TiedScores()
    data = torch.utils.data.TensorDataset(x, y)
    result = run_margin_pass(model, margin_dataloader(data, 16), default_forward, MarginCollector())
    with torch.no_grad():
        logits = model(x).tolist()
    expected = [max(range(3), key=lambda k, row=row: (row[k], -k)) for row in logits]
    assert result.predicted.tolist() == expected
    assert result.predicted.dtype == torch.int64
    tied = (y == 0) & (result.predicted == 0)
    assert bool(tied.any()) and bool((result.margins[tied] == 0).all())


def test_chunked_reduction_equals_the_per_batch_one_and_names_the_bad_samples() -> None:
    """Holding batches until a chunk is full changes nothing in the vectors (compared with a chunk per batch and
    with one chunk for everything); a non-finite output is left out and named by its dataset index, a label outside
    the classes fails naming the sample and the label, ``ignore_index`` labels are counted and left out."""
    import pytest

    from lightning_stability.callbacks.margin_pass import MarginRecorder

    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(1000, 7, generator=generator)
    targets = torch.randint(0, 7, (1000,), generator=generator)
    results = []
    for chunk in (1, 7 * 130, 10**9):
        recorder, collector = MarginRecorder(chunk_scores=chunk), MarginCollector()
        for start in range(0, 1000, 64):
            recorder.record(
                torch.arange(start, min(start + 64, 1000)), logits[start : start + 64], targets[start : start + 64]
            )
        recorder.hand_over(collector)
        results.append(collector.compute())
    for other in results[1:]:
        assert all(torch.equal(results[0][key], other[key]) for key in results[0])
    assert torch.equal(
        results[0]["margins"],
        torch.tensor(
            [
                float(row[t]) - max(float(v) for j, v in enumerate(row) if j != t)
                for row, t in zip(logits.double(), targets.tolist())
            ],
            dtype=torch.float64,
        ),
    )

    broken = logits.clone()
    broken[[300, 701]] = torch.nan
    recorder = MarginRecorder()
    for start in range(0, 1000, 64):
        recorder.record(
            torch.arange(start, min(start + 64, 1000)) + 5000, broken[start : start + 64], targets[start : start + 64]
        )
    collector = MarginCollector()
    recorder.hand_over(collector)  # non-finite rows are left out and named, never certified
    left_out = collector.compute()
    assert left_out["non_finite"].tolist() == [5300, 5701]
    kept = torch.ones(1000, dtype=torch.bool)
    kept[[300, 701]] = False
    assert torch.equal(left_out["indices"], torch.arange(1000)[kept] + 5000)
    assert torch.equal(left_out["margins"], results[0]["margins"][kept])

    wrong = targets.clone()
    wrong[[40, 41]] = torch.tensor([7, -100])
    for ignore_index, match in ((-100, r"\{5040: 7\}; `ignore_index=-100`"), (None, r"\{5040: 7, 5041: -100\}")):
        recorder = MarginRecorder(ignore_index=ignore_index)
        recorder.record(torch.arange(64) + 5000, logits[:64], wrong[:64])
        with pytest.raises(ValueError, match=match):
            recorder.hand_over(MarginCollector())
    ignored = targets.clone()
    ignored[[3, 9, 10]] = -100
    recorder, collector = MarginRecorder(ignore_index=-100), MarginCollector()
    recorder.record(torch.arange(64), logits[:64], ignored[:64])
    recorder.hand_over(collector)
    vectors = collector.compute()
    assert int(vectors["ignored"]) == 3
    assert vectors["indices"].tolist() == [i for i in range(64) if i not in (3, 9, 10)]
