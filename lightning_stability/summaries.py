"""Plain-words summaries of a check, for the loggers' text views and the console (docs/guide.md)."""

from __future__ import annotations

from collections.abc import Sequence

from .theory import StabilityReport

__all__ = ["check_summary"]


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
