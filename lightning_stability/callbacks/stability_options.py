"""The `StabilityMonitor`'s options validated at construction (every wrong option fails here, with what was wrong
and what to pass, never after an epoch), and its checkpoints of release 0.1.0 read in today's layout
(`upgraded_state`)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .. import theory
from ..distributions import MisconfigurationError
from .base import check_positive_int
from .subset_draw import check_subset_options

__all__ = ["LEGACY_KEYS", "upgraded_state", "validate_stability_options"]

LEGACY_KEYS = {
    "instability_count": ("history", "instability_count"),
    "instability_epochs": ("history", "instability_epochs"),
    "previous": ("history", "previous"),
    "check_series": ("history", "checks"),
    "consecutive_instabilities": ("stop_rule", "consecutive"),
}
"""The flat checkpoint keys of release 0.1.0 → (part, key in the part's ``state_dict``); ``sample_state`` was the
statistics' whole ``state_dict`` and ``subset_state`` the draw's plus the subset checks' history (`upgraded_state`)."""


def upgraded_state(state: dict[str, Any]) -> dict[str, Any]:
    """A `StabilityMonitor` checkpoint state in the current layout (``checks_done``, ``stop_reason``,
    ``last_checked_epoch`` and one ``state_dict`` per part: ``history``, ``stop_rule``, ``statistics``, ``draw``),
    from itself or from the flat keys of release 0.1.0 (`LEGACY_KEYS`); a key the old state lacks gets the value of a
    fresh monitor (``statistics``: ``None``, nothing to restore)."""
    if "history" in state:
        return state
    parts: dict[str, dict[str, Any]] = {
        "history": {
            "instability_count": 0,
            "instability_epochs": [],
            "previous": None,
            "subset_previous": None,
            "subset_instability_count": 0,
            "checks": [],
        },
        "stop_rule": {"consecutive": 0},
        "draw": {"indices": None, "counts": None},
    }
    for old, (part, key) in LEGACY_KEYS.items():
        if old in state:
            parts[part][key] = state[old]
    subset = state.get("subset_state")
    if subset is not None:
        parts["draw"] = {"indices": subset["indices"], "counts": subset["counts"]}
        parts["history"]["subset_previous"] = subset["previous"]
        parts["history"]["subset_instability_count"] = subset["instability_count"]
    return {
        "checks_done": state.get("checks_done", 0),
        "stop_reason": state.get("stop_reason"),
        "last_checked_epoch": state.get("last_checked_epoch"),
        "statistics": state.get("sample_state"),
        **parts,
    }


def _error(message: str) -> MisconfigurationError:
    return MisconfigurationError(f"StabilityMonitor: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_weights(weights: Any) -> None:
    """``None`` (follow the training sampler), ``'uniform'``, ``'balanced'`` or a 1-D tensor of non-negative
    finite weights (its length is checked against the dataset when training starts)."""
    accepted = "None (follow the training sampler), 'uniform', 'balanced' or a tensor of per-sample weights"
    if weights is None or (isinstance(weights, str) and weights in ("uniform", "balanced")):
        return
    if not isinstance(weights, Tensor):
        raise _error(f"`weights` must be {accepted}, got {weights!r}.")
    if weights.ndim != 1 or weights.is_complex() or weights.dtype == torch.bool:
        raise _error(
            f"`weights` must be a 1-D real tensor with one weight per sample (e.g. `mask.double()`), got shape "
            f"{tuple(weights.shape)} and dtype {weights.dtype}."
        )
    values = weights.detach().double()
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise _error("`weights` must be non-negative and finite; NaN, inf or negative entries found.")


def _check_grid(grid: Any) -> None:
    if grid is None:
        return
    fields = [field.name for field in dataclasses.fields(theory.CertificateGrid)]
    if not isinstance(grid, Mapping):
        raise _error(
            f"`grid` must be a dict of CertificateGrid overrides or None, got {grid!r}; pass e.g. "
            "grid=dict(zetas=(0.01, 0.1))."
        )
    unknown = [key for key in grid if key not in fields]
    if unknown:
        raise _error(f"`grid` has unknown keys {unknown}; pass overrides of CertificateGrid's fields {fields}.")
    try:
        theory.CertificateGrid(**grid)  # fail now, not after the first epoch, on a bad grid
    except (ValueError, TypeError) as error:
        raise _error(
            f"`grid` is not a valid CertificateGrid ({str(error).rstrip('.')}); got grid={dict(grid)!r}; pass "
            "overrides within the documented ranges (docs/theory.md §7)."
        ) from error


def validate_stability_options(**options: Any) -> None:
    """Raise a `MisconfigurationError` naming the option and the fix for the first invalid one."""
    name = "StabilityMonitor"
    if options["dataset"] is not None and options["dataloader"] is not None:
        raise _error("pass either `dataset=` or `dataloader=`, not both.")
    if options["batch_size"] is not None:
        check_positive_int(name, "batch_size", options["batch_size"])
    workers = options["num_workers"]
    if not _is_int(workers) or workers < 0:
        raise _error(f"`num_workers` must be a non-negative integer, got {workers!r}.")
    check_positive_int(name, "patience", options["patience"])
    tol = options["tol"]
    if isinstance(tol, bool) or not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
        raise _error(f"`tol` must be a finite number >= 0 (an accuracy drop, e.g. 0.01), got {tol!r}.")
    weights = options["weights"]
    ignore_index = options["ignore_index"]
    if ignore_index is not None and not _is_int(ignore_index):
        raise _error(f"`ignore_index` must be an integer label or None, got {ignore_index!r}.")
    _check_weights(weights)
    forward_fn = options["forward_fn"]
    if forward_fn is not None and not callable(forward_fn):
        raise _error(
            f"`forward_fn` must be a function `forward_fn(pl_module, batch) -> (logits, targets)` or None, "
            f"got {forward_fn!r}."
        )
    quantiles = options["quantiles"]
    if not isinstance(quantiles, Sequence) or isinstance(quantiles, str):
        raise _error(f"`quantiles` must be a sequence of levels in (0, 1), e.g. (0.05, 0.5), got {quantiles!r}.")
    if any(isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q < 1 for q in quantiles):
        raise _error(f"`quantiles` must lie in (0, 1), got {quantiles}.")
    _check_grid(options["grid"])
    if options["stochastic_data"] not in ("error", "approximate"):
        raise _error(f"`stochastic_data` must be 'error' or 'approximate', got {options['stochastic_data']!r}.")
    check_subset_options(options["subset_size"], options["confidence"], options["full_every_n_epochs"], weights)
    if options["subset_size"] is not None and options["dataloader"] is not None:
        raise _error("`subset_size=` needs `dataset=` (or the training data), not `dataloader=`.")
    if not _is_int(options["subset_seed"]):
        raise _error(f"`subset_seed` must be an integer, got {options['subset_seed']!r}.")
    if not isinstance(options["check_data"], bool | dict):
        raise _error(f"`check_data` must be a bool or a dict of settings, got {options['check_data']!r}.")
    check_positive_int(name, "blame_size", options["blame_size"])
    to_image = options["to_image"]
    if to_image is not None and not callable(to_image):
        raise _error(f"`to_image` must be a function of a dataset item, got {to_image!r}.")
    save_margins = options["save_margins"]
    if not (save_margins is None or isinstance(save_margins, bool | str | os.PathLike)) or save_margins == "":
        raise _error(
            f"`save_margins` must be a directory (str or path), True (<log_dir>/margins), False or None, "
            f"got {save_margins!r}."
        )
    if options["save_samples"] not in (None, True, False):
        raise _error(
            f"`save_samples` must be True, False or None (follow save_margins), got {options['save_samples']!r}."
        )
