"""A run's verdict in plain words, from its checks (`lightning_stability.stability_tab.view`): is the accuracy
reached stable, since when and certified how high, or where did training trade accuracy for loss; and why
training stopped, when it did (`stop_line`).

Examples of what it says::

    stable since epoch 9: accuracy 0.9998, certified ≥ 0.9917 while the loss does not rise
    instability at epoch 8: loss 0.00331 → 0.00315 while accuracy 0.99978 → 0.99956 (1 sample)
    training stopped at epoch 10: instability (patience 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["event_sentence", "stop_line", "verdict", "when"]

_FLOORS = ("loss_floor", "theorem_a_floor", "theorem_b_floor")


def when(check: dict[str, Any]) -> str:
    """``epoch E``, ``before training`` (epoch −1) or ``step S`` (a check whose epoch was not logged)."""
    if check["epoch"] is None:
        return f"step {check['step']}"
    return "before training" if check["epoch"] < 0 else f"epoch {check['epoch']}"


def _value(value: float | None, spec: str) -> str:
    return "?" if value is None else format(value, spec)


def event_sentence(previous: dict[str, Any], check: dict[str, Any], num_samples: int | None) -> str:
    """``instability at epoch 8: loss 0.00331 → 0.00315 while accuracy 0.99978 → 0.99956 (1 sample)``: the
    samples are the accuracy lost times the number of certified samples (left out when that is unknown)."""
    loss = f"loss {_value(previous['loss'], '.3g')} → {_value(check['loss'], '.3g')}"
    accuracy = f"accuracy {_value(previous['accuracy'], '.5f')} → {_value(check['accuracy'], '.5f')}"
    lost = ""
    if num_samples and previous["accuracy"] is not None and check["accuracy"] is not None:
        count = round((previous["accuracy"] - check["accuracy"]) * num_samples)
        lost = f" ({count} sample{'' if count == 1 else 's'})"
    return f"instability at {when(check)}: {loss} while {accuracy}{lost}"


def stop_line(reason: str, epoch: int, patience: int) -> str:
    """The first line of the ``stability/stop`` text: ``training stopped at epoch 10: instability (patience 1)``,
    ``…: non-finite outputs`` or ``…: nothing to certify``, from the monitor's ``stop_reason`` (its messages:
    `lightning_stability.summaries.instability_reason`, `lightning_stability.callbacks.setup_checks.no_certificate_reason`).
    """
    if reason.startswith("instability"):
        why = f"instability (patience {patience})"
    elif "not finite" in reason:
        why = "non-finite outputs"
    elif "nothing to certify" in reason:
        why = "nothing to certify"
    else:
        why = reason.split(";")[0]
    place = "before training" if epoch < 0 else f"at epoch {epoch}"
    return f"training stopped {place}: {why}"


def verdict(checks: Sequence[dict[str, Any]], num_samples: int | None, stop: str | None) -> dict[str, Any]:
    """``{"state", "headline", "events", "stop"}``: the state (``unstable`` when the last check is an instability
    event, ``stable`` when a floor above 0 certifies the accuracy, else ``uncertified``), the headline sentence,
    one sentence per instability event (oldest first) and the stop line (``None``: training was not stopped)."""
    events = [
        event_sentence(checks[i - 1], checks[i], num_samples) for i in range(1, len(checks)) if checks[i]["event"]
    ]
    last = checks[-1]
    if last["event"] and len(checks) > 1:
        return {"state": "unstable", "headline": events[-1], "events": events, "stop": stop}
    after = [i for i in range(1, len(checks)) if checks[i]["event"]]
    trained = [i for i, check in enumerate(checks) if check["epoch"] is None or check["epoch"] >= 0]
    since = checks[after[-1] + 1] if after else checks[trained[0] if trained else 0]
    floors = [last[key] for key in _FLOORS if last[key] is not None]
    best = max(floors, default=0.0)
    accuracy = _value(last["accuracy"], ".4f")
    if best > 0:
        state = "stable"
        headline = (
            f"stable since {when(since)}: accuracy {accuracy}, certified ≥ {best:.4f} while the loss does not rise"
        )
    else:
        state = "uncertified"
        headline = f"no instability since {when(since)}: accuracy {accuracy}, nothing certified yet (every floor is 0)"
    return {"state": state, "headline": headline, "events": events, "stop": stop}
