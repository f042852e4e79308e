"""Plain-words summaries of a check, for the loggers' text views and the console (docs/guide.md)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .assess import CheckResult
from .records import MarginPass
from .theory import StabilityReport, SubsetEstimate

__all__ = [
    "MAX_CLASSES_NAMED",
    "check_summary",
    "check_texts",
    "flip_sentence",
    "instability_reason",
    "scope_sentence",
    "stop_sentence",
    "subset_summary",
]


def _epochs(epochs: Sequence[int]) -> str:
    if len(epochs) == 1:
        return f"epoch {epochs[0]}"
    return "epochs " + ", ".join(str(epoch) for epoch in epochs[:-1]) + f" and {epochs[-1]}"


def check_summary(
    report: StabilityReport, epoch: int, instability_epochs: Sequence[int], loss_rose: bool = False
) -> str:
    """One short Markdown paragraph: the accuracy, the best certified floor and the theorem that gives it, and the
    instability events so far.

    Example:
        A summary reads like ``epoch 11: training accuracy 1.0000, certified ≥ 0.9917 as long as the training
        loss does not rise above 0.000571 (Theorem A). Instability at epoch 8.``
    """
    floors = {
        "Theorem 0, the loss floor": report.loss_floor,
        "Theorem A": report.theorem_a.floor,
        "Theorem B": report.theorem_b.floor,
    }
    best_name, best = max(floors.items(), key=lambda item: item[1])
    when = "before training" if epoch < 0 else f"epoch {epoch}"
    loss = report.loss if report.loss is not None else report.loss_upper
    if best > 0:
        certified = f"certified ≥ {best:.4f} as long as the training loss does not rise above {loss:.6g} ({best_name})"
    else:
        certified = f"no accuracy is certified yet (every floor is 0 at loss {loss:.6g})"
    lines = [f"{when}: training accuracy {report.accuracy:.4f}, {certified}."]
    if report.accuracy > 0 and best > 0:
        lines.append(f"The gap accuracy − floor is {report.accuracy - best:.4f}.")
    if loss_rose:
        lines.append("The loss rose since the previous check, so the previous check's floors no longer apply.")
    if instability_epochs:
        lines.append(f"Instability (loss fell while accuracy fell) at {_epochs(list(instability_epochs))}.")
    else:
        lines.append("No instability event so far.")
    return " ".join(lines)


MAX_CLASSES_NAMED = 5
"""A flip sentence names at most this many classes (those with the most flips) and counts the rest."""


def flip_sentence(forgotten: Tensor, margin_pass: MarginPass, max_classes: int = MAX_CLASSES_NAMED) -> str:
    """``"N samples flipped to wrong since the previous check (class c: n, …)."``: the flips counted per class,
    the ``max_classes`` classes with the most flips named, largest count first (equal counts: the smaller class
    first), then ``"… and M more classes"`` for the other classes with a flip; so the sentence stays about 200
    characters long however many classes there are.

    Example:
        With 100 classes: ``"1,227 samples flipped to wrong since the previous check (class 1: 20, class 6: 19,
        class 7: 19, class 37: 19, class 44: 19, … and 95 more classes)."``
    """
    count = forgotten.numel()
    if count == 0:
        return "No sample flipped to wrong since the previous check."
    positions = torch.searchsorted(margin_pass.indices, forgotten)
    counts = torch.bincount(margin_pass.targets[positions]).tolist()
    ranked = sorted((c for c, n in enumerate(counts) if n), key=lambda c: (-counts[c], c))
    parts = [f"class {c}: {counts[c]:,}" for c in ranked[:max_classes]]
    rest = len(ranked) - len(parts)
    if rest:
        parts.append(f"… and {rest} more class{'es' if rest != 1 else ''}")
    return (
        f"{count:,} sample{'s' if count != 1 else ''} flipped to wrong since the previous check ({', '.join(parts)})."
    )


def subset_summary(
    estimate: SubsetEstimate, report: StabilityReport, epoch: int, event: bool, full_checks_scheduled: bool
) -> str:
    """The plain-words line of a subset check of the statistical mode: what is bounded, what is only estimated."""
    where = "before training" if epoch < 0 else f"epoch {epoch}"
    text = (
        f"**Estimate** ({where}, {estimate.draws} random draws of the training samples, confidence "
        f"{estimate.confidence:g}): training accuracy {estimate.accuracy:.4f}, at least "
        f"{estimate.accuracy_lower:.4f} with probability ≥ {estimate.confidence:g} (Clopper–Pearson). "
        f"Floors on the draws (estimates, not certificates): loss {report.loss_floor:.4f}, "
        f"Theorem A {report.theorem_a.floor:.4f}, Theorem B {report.theorem_b.floor:.4f}."
    )
    if event:
        text += " Instability on the drawn samples: their loss fell while their accuracy fell."
    if not full_checks_scheduled:
        text += " No full exact check is scheduled (`full_every_n_epochs=None`)."
    return text


def scope_sentence(ignored: int, weights_source: str, ignore_index: int | None) -> str:
    """What the certified set is, where that differs from "every sample, uniform": the samples left out and
    weights taken from the training sampler."""
    parts = []
    if weights_source == "sampler":
        parts.append("Weights μ follow the training loader's WeightedRandomSampler (the loss training lowers).")
    if ignored:
        label = f"labelled ignore_index={ignore_index} or " if ignore_index is not None else ""
        parts.append(f"{ignored} samples ignored ({label}of weight zero).")
    return " ".join(parts)


def check_texts(
    result: CheckResult,
    instability_epochs: Sequence[int],
    instability_count: int,
    approximate: bool,
    full_checks_scheduled: bool,
    scope: str = "",
) -> tuple[str, str]:
    """A check's text summary (Markdown, for the loggers' text views) and its console line; ``scope``
    (`scope_sentence`) ends both. An exact check (`lightning_stability.assess.ExactCheck`) reads `check_summary`
    and, at an event, `flip_sentence`; a subset check (`lightning_stability.assess.SubsetCheck`) its
    `subset_summary`, as both texts."""
    summary, line = _check_texts(result, instability_epochs, instability_count, approximate, full_checks_scheduled)
    if scope:
        summary, line = f"{summary} {scope}", f"{line}; {scope}"
    return summary, line


def _check_texts(
    result: CheckResult,
    instability_epochs: Sequence[int],
    instability_count: int,
    approximate: bool,
    full_checks_scheduled: bool,
) -> tuple[str, str]:
    report, epoch = result.report, result.epoch
    if not result.exact:
        text = subset_summary(result.estimate, report, epoch, result.comparison.event, full_checks_scheduled)
        return text, text
    summary = check_summary(report, epoch, instability_epochs, result.comparison.loss_rose)
    flips = " " + flip_sentence(result.forgotten, result.margin_pass) if result.comparison.event else ""
    summary += flips
    if approximate:
        summary = "**Approximate** (random training data: this check certifies one random draw). " + summary
    line = (
        f"{'[approximate: random training data] ' if approximate else ''}"
        f"{'before training' if epoch < 0 else f'epoch {epoch}'}: accuracy {report.accuracy:.4f}, "
        f"loss {result.loss:.4f}, "
        f"loss floor {report.loss_floor:.4f}, Theorem A floor {report.theorem_a.floor:.4f}, "
        f"Theorem B floor {report.theorem_b.floor:.4f}, instability events {instability_count}"
        f"{';' if flips else ''}{flips}"
    )
    return summary, line


def instability_reason(result: CheckResult, consecutive: int, patience: int, tol: float) -> str:
    """The warning (and stop reason) of an instability event: an exact check's loss and accuracy before and after,
    or a subset check's draws."""
    comparison = result.comparison
    counted = f"{consecutive} consecutive event(s), patience {patience}"
    if not result.exact:
        return (
            f"instability on the subset at epoch {result.epoch}: the loss of the {result.estimate.draws} drawn "
            f"samples fell while their accuracy fell; {counted}"
        )
    return (
        f"instability at epoch {result.epoch}: the training loss fell ({comparison.previous_loss:.6g} -> "
        f"{result.loss:.6g}) while the training accuracy fell ({comparison.previous_accuracy:.6g} -> "
        f"{result.report.accuracy:.6g}, tol {tol:g}); {counted}"
    )


def stop_sentence(epoch: int, consecutive: int, patience: int) -> str:
    """What the summary and the console say of a check that stops training on instability."""
    when = "before training" if epoch < 0 else f"at epoch {epoch}"
    events = f"{consecutive} consecutive event{'s' if consecutive != 1 else ''}"
    return f"Training stopped {when}: instability ({events}, patience {patience})."
