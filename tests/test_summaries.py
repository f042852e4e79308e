"""lightning_stability.summaries: the plain-words sentences of a check, on hand-made reports and passes."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

import torch

from lightning_stability import theory
from lightning_stability.assess import CheckResult, Comparison, ExactCheck, SubsetCheck
from lightning_stability.records import MarginPass
from lightning_stability.summaries import (
    MAX_CLASSES_NAMED,
    check_summary,
    check_texts,
    flip_sentence,
    instability_reason,
    subset_summary,
)


def report(
    accuracy: float = 0.875,
    loss: float | None = 0.2,
    loss_floor: float = 0.7115,
    a_floor: float = 0.75,
    b_floor: float = 0.6,
    loss_upper: float = 0.3,
) -> theory.StabilityReport:
    """A hand-made report: only the values the sentences read matter."""
    a = theory.TheoremAFloor(a_floor, 0.1, 0.2, 0.125, 1.0, 0.3, 2.0, 0.3)
    b = theory.TheoremBFloor(b_floor, 0.1, 0.2, 0.125, 2.0, 0.125, 0.00625, 0.05, 1.5, 1.6, 0.4)
    return theory.StabilityReport(
        8, 3, accuracy, loss, 0.1, loss_upper, loss_floor, 0.5, -0.5, (0.0,), (0.875,), (0.125,), a, b
    )


# samples 0, 2, 4, 6, 8 of classes 1, 0, 1, 2, 1
PASS = MarginPass(
    indices=torch.tensor([0, 2, 4, 6, 8]),
    targets=torch.tensor([1, 0, 1, 2, 1]),
    margins=torch.tensor([0.5, -0.1, -0.2, 1.0, -0.3], dtype=torch.float64),
    losses=torch.tensor([0.4, 0.8, 0.9, 0.1, 1.0], dtype=torch.float64),
    predicted=torch.tensor([1, 1, 0, 2, 0]),
    num_classes=3,
)

ESTIMATE = theory.SubsetEstimate(
    draws=64, distinct_samples=50, confidence=0.95, accuracy=0.9, accuracy_lower=0.8125, dkw_epsilon=0.17, quantiles={}
)


def exact_result(event: bool = True, loss_rose: bool = False) -> ExactCheck:
    return ExactCheck(
        epoch=3,
        margin_pass=PASS,
        weights=None,
        mu=torch.full((5,), 0.2, dtype=torch.float64),
        loss=0.2,
        report=report(),
        comparison=Comparison(event=event, loss_rose=loss_rose, previous_loss=0.25, previous_accuracy=0.9375),
        instability_count=2,
        forgotten=torch.tensor([8, 2, 4]),
        blame=None,
        metrics={},
    )


def result(exact: bool = True, event: bool = True, loss_rose: bool = False) -> CheckResult:
    """An exact check of `PASS`, or a subset check of the same pass with `ESTIMATE`."""
    if exact:
        return exact_result(event, loss_rose)
    return SubsetCheck(
        epoch=3,
        margin_pass=PASS,
        mu=torch.full((5,), 0.2, dtype=torch.float64),
        loss=0.2,
        report=report(),
        estimate=ESTIMATE,
        comparison=Comparison(event=event, loss_rose=loss_rose, previous_loss=0.25, previous_accuracy=0.9375),
        instability_count=2,
        metrics={},
    )


FLIPS = "3 samples flipped to wrong since the previous check (class 1: 2, class 0: 1)."


def test_flip_sentence_counts_the_forgotten_by_class() -> None:
    # samples 8, 2, 4 have classes 1, 0, 1: the larger count first
    assert flip_sentence(torch.tensor([8, 2, 4]), PASS) == FLIPS
    assert flip_sentence(torch.tensor([6]), PASS) == "1 sample flipped to wrong since the previous check (class 2: 1)."
    assert flip_sentence(torch.zeros(0, dtype=torch.long), PASS) == (
        "No sample flipped to wrong since the previous check."
    )


def test_flip_sentence_names_the_classes_with_most_flips_and_counts_the_others() -> None:
    # samples 0, 2, 4, 6, 8 of classes 1, 0, 1, 2, 1; all but 8 flipped: class 1: 2, classes 0 and 2: 1 each
    flipped = torch.tensor([0, 2, 4, 6])
    assert flip_sentence(flipped, PASS, max_classes=2) == (
        "4 samples flipped to wrong since the previous check (class 1: 2, class 0: 1, … and 1 more class)."
    )  # equal counts: the smaller class first
    assert flip_sentence(flipped, PASS, max_classes=1) == (
        "4 samples flipped to wrong since the previous check (class 1: 2, … and 2 more classes)."
    )
    assert flip_sentence(flipped, PASS, max_classes=3).endswith("(class 1: 2, class 0: 1, class 2: 1).")


N_MANY = 5000


def hundred_classes() -> tuple[MarginPass, torch.Tensor]:
    """A pass of 5,000 samples (indices 0, 2, 4, …: not positions) of 100 random classes, and 1,227 of them
    forgotten."""
    generator = torch.Generator().manual_seed(0)
    indices = 2 * torch.arange(N_MANY)
    targets = torch.randint(0, 100, (N_MANY,), generator=generator)
    margins = torch.randn(N_MANY, generator=generator, dtype=torch.float64)
    predicted = torch.where(margins > 0, targets, (targets + 1) % 100)
    many = MarginPass(indices, targets, margins, torch.nn.functional.softplus(-margins), predicted, 100)
    forgotten = torch.sort(indices[torch.randperm(N_MANY, generator=generator)[:1227]]).values
    return many, forgotten


def test_the_flips_of_100_classes_name_the_five_largest_counts() -> None:
    many, forgotten = hundred_classes()
    target_of = dict(zip(many.indices.tolist(), many.targets.tolist(), strict=True))
    counts = Counter(target_of[i] for i in forgotten.tolist())
    largest = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_CLASSES_NAMED]
    sentence = flip_sentence(forgotten, many)
    named = [(int(c), int(n)) for c, n in re.findall(r"class (\d+): (\d+)", sentence)]
    assert named == largest and len(counts) > 90
    assert sentence.startswith("1,227 samples flipped to wrong since the previous check (")
    assert sentence.endswith(f", … and {len(counts) - MAX_CLASSES_NAMED} more classes).")
    assert len(sentence) <= 200

    event = replace(exact_result(), margin_pass=many, forgotten=forgotten, mu=torch.full((N_MANY,), 1 / N_MANY))
    summary, line = check_texts(event, [1, 3], 2, approximate=False, full_checks_scheduled=True)
    assert line.endswith("; " + sentence) and summary.endswith(" " + sentence)
    assert len(line) <= 300 and len(summary) <= 400  # 1,550 and 1,641 when every class was named


def test_check_summary_names_the_best_floor_and_the_events() -> None:
    assert check_summary(report(), 3, [1, 4]) == (
        "epoch 3: training accuracy 0.8750, certified ≥ 0.7500 as long as the training loss does not rise above "
        "0.2 (Theorem A). The gap accuracy − floor is 0.1250. Instability (loss fell while accuracy fell) at "
        "epochs 1 and 4."
    )
    # Theorem B best, one event, the loss rose; before training
    text = check_summary(report(b_floor=0.8125), -1, [8], loss_rose=True)
    assert text == (
        "before training: training accuracy 0.8750, certified ≥ 0.8125 as long as the training loss does not rise "
        "above 0.2 (Theorem B). The gap accuracy − floor is 0.0625. The loss rose since the previous check, so the "
        "previous check's floors no longer apply. Instability (loss fell while accuracy fell) at epoch 8."
    )
    assert check_summary(report(loss_floor=0.9), 0, [1, 2, 5]).endswith("at epochs 1, 2 and 5.")
    assert "(Theorem 0, the loss floor)" in check_summary(report(loss_floor=0.9), 0, [])


def test_check_summary_without_a_floor_uses_the_loss_upper_bound() -> None:
    text = check_summary(report(loss=None, loss_floor=0.0, a_floor=0.0, b_floor=0.0, loss_upper=1.5), 2, [])
    assert text == (
        "epoch 2: training accuracy 0.8750, no accuracy is certified yet (every floor is 0 at loss 1.5). "
        "No instability event so far."
    )


def test_subset_summary() -> None:
    expected = (
        "**Estimate** (before training, 64 random draws of the training samples, confidence 0.95): training "
        "accuracy 0.9000, at least 0.8125 with probability ≥ 0.95 (Clopper–Pearson). Floors on the draws "
        "(estimates, not certificates): loss 0.5000, Theorem A 0.2500, Theorem B 0.1250."
    )
    floors = report(loss_floor=0.5, a_floor=0.25, b_floor=0.125)
    assert subset_summary(ESTIMATE, floors, -1, event=False, full_checks_scheduled=True) == expected
    assert subset_summary(ESTIMATE, floors, 4, event=True, full_checks_scheduled=False) == (
        expected.replace("before training", "epoch 4")
        + " Instability on the drawn samples: their loss fell while their accuracy fell."
        + " No full exact check is scheduled (`full_every_n_epochs=None`)."
    )


def test_check_texts_of_an_exact_event() -> None:
    summary, line = check_texts(
        result(), instability_epochs=[1, 3], instability_count=2, approximate=False, full_checks_scheduled=True
    )
    assert summary == (
        "epoch 3: training accuracy 0.8750, certified ≥ 0.7500 as long as the training loss does not rise above "
        "0.2 (Theorem A). The gap accuracy − floor is 0.1250. Instability (loss fell while accuracy fell) at "
        "epochs 1 and 3. " + FLIPS
    )
    assert line == (
        "epoch 3: accuracy 0.8750, loss 0.2000, loss floor 0.7115, Theorem A floor 0.7500, Theorem B floor 0.6000, "
        "instability events 2; " + FLIPS
    )


def test_check_texts_approximate_without_event() -> None:
    summary, line = check_texts(
        result(event=False, loss_rose=True), [], instability_count=0, approximate=True, full_checks_scheduled=True
    )
    assert summary == (
        "**Approximate** (random training data: this check certifies one random draw). epoch 3: training accuracy "
        "0.8750, certified ≥ 0.7500 as long as the training loss does not rise above 0.2 (Theorem A). The gap "
        "accuracy − floor is 0.1250. The loss rose since the previous check, so the previous check's floors no "
        "longer apply. No instability event so far."
    )
    assert line == (
        "[approximate: random training data] epoch 3: accuracy 0.8750, loss 0.2000, loss floor 0.7115, "
        "Theorem A floor 0.7500, Theorem B floor 0.6000, instability events 0"
    )


def test_check_texts_of_a_subset_check_is_its_summary_twice() -> None:
    summary, line = check_texts(result(exact=False), [3], 1, approximate=False, full_checks_scheduled=False)
    assert summary == line
    assert summary.startswith("**Estimate** (epoch 3, 64 random draws")
    assert summary.endswith(
        "Instability on the drawn samples: their loss fell while their accuracy fell. "
        "No full exact check is scheduled (`full_every_n_epochs=None`)."
    )


def test_instability_reason() -> None:
    assert instability_reason(result(), consecutive=2, patience=3, tol=0.01) == (
        "instability at epoch 3: the training loss fell (0.25 -> 0.2) while the training accuracy fell "
        "(0.9375 -> 0.875, tol 0.01); 2 consecutive event(s), patience 3"
    )
    assert instability_reason(result(exact=False), consecutive=1, patience=2, tol=0.0) == (
        "instability on the subset at epoch 3: the loss of the 64 drawn samples fell while their accuracy fell; "
        "1 consecutive event(s), patience 2"
    )
