"""The SharpnessMonitor's logged values of one check, under their final names (docs/metrics.md, docs/dynamics.md D1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..distributions import MisconfigurationError
from ..dynamics.sharpness_check import SharpnessEstimates

__all__ = ["PREFIX", "check_extra_options", "check_metrics"]

PREFIX = "stability/sharpness/"


def check_metrics(estimates: SharpnessEstimates, loss: float, lr: float, k: int) -> dict[str, float]:
    """Every value of a check but the verdict's: ``lambda_max``, ``lr``, ``lr_lambda_over_2`` (``lr·λ_max/2``),
    ``loss``, ``hvp_count``, ``converged``, ``gap`` and ``lambda_<i>`` (``i = 2 … k``) when estimated,
    ``edge_ratio`` when the optimizer was read, ``trace`` and ``trace_stderr`` when requested, and
    ``group<g>/lambda_max`` for each parameter group with trainable parameters when requested."""
    top = estimates.top[0]
    metrics = {
        PREFIX + "lambda_max": top.value,
        PREFIX + "lr": lr,
        PREFIX + "lr_lambda_over_2": lr * top.value / 2,
        PREFIX + "loss": loss,
        PREFIX + "hvp_count": float(estimates.products),
        PREFIX + "converged": float(estimates.converged),
    }
    if estimates.gap is not None:
        metrics[PREFIX + "gap"] = estimates.gap
    for i, extra in enumerate(estimates.top[1:k], start=2):
        metrics[PREFIX + f"lambda_{i}"] = extra.value
    if estimates.edge_ratio is not None:
        metrics[PREFIX + "edge_ratio"] = estimates.edge_ratio
    if estimates.trace is not None:
        metrics[PREFIX + "trace"] = estimates.trace.value
        metrics[PREFIX + "trace_stderr"] = estimates.trace.stderr
    for index, block in enumerate(estimates.groups):
        if block is not None:
            metrics[PREFIX + f"group{index}/lambda_max"] = block.value
    return metrics


def check_extra_options(
    error: Callable[[str], MisconfigurationError], trace_samples: Any, trace_method: Any, groups: Any, mode: Any
) -> None:
    """The options of the optional values and of batch norm: ``trace_samples`` 0 or at least 2 (Hutch++: 4),
    ``trace_method`` ``"hutchinson"`` or ``"hutch++"``, ``groups`` a bool, ``mode`` ``"eval"`` or ``"train"``;
    raises ``error(message)`` otherwise."""
    if trace_method not in ("hutchinson", "hutch++"):
        raise error(f"`trace_method` must be 'hutchinson' or 'hutch++', got {trace_method!r}.")
    least = 4 if trace_method == "hutch++" else 2
    if (
        not isinstance(trace_samples, int)
        or isinstance(trace_samples, bool)
        or (trace_samples != 0 and trace_samples < least)
    ):
        raise error(f"`trace_samples` must be 0 (no trace) or an integer >= {least}, got {trace_samples!r}.")
    if not isinstance(groups, bool):
        raise error(f"`groups` must be True or False, got {groups!r}.")
    if mode not in ("eval", "train"):
        raise error(f"`mode` must be 'eval' or 'train', got {mode!r}.")
