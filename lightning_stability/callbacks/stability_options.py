"""The `StabilityMonitor`'s options: their documentation, grouped as a user asks, and their validation at
construction (every wrong option fails here, with what was wrong and what to pass, never after an epoch)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import theory
from ..assess import CheckSettings
from ..distributions import MisconfigurationError
from ..dynamics.samples import SampleStatistics
from .base import check_positive_int
from .check_cost import CheckCost
from .collect import MarginSource
from .margin_pass import ForwardFn
from .publish import CheckPublisher
from .run_outputs import RunOutputs
from .subset_draw import SubsetDraw, check_subset_options

__all__ = ["STABILITY_DOC", "StabilityOptionAttributes", "validate_stability_options"]

STABILITY_DOC = r"""Certify, at the end of training epochs, whether the training accuracy reached is stable.

    Every ``every_n_epochs`` training epochs (and once when training starts) the monitor runs an exact margin
    pass over the **whole training set** (model in eval mode, ``torch.inference_mode()``, the trainer's precision
    context, a fixed sequential order; under DDP every rank evaluates a shard and the results are gathered),
    calls `lightning_stability.theory.certify` and logs, under ``stability/``, the accuracy, the loss and
    its margin sandwich, the Theorem 0/A/B accuracy floors with their parameters, the good/bad masses, margin
    quantiles, flip masses and the instability flags of docs/theory.md §8. An *instability event* is a check whose
    training loss fell while its training accuracy fell by more than ``tol`` since the previous check.
    Every option is a keyword argument.

    Args:
        dataset: **Which samples.** The samples to certify (e.g. the training set with evaluation transforms);
            default: the dataset behind ``trainer.train_dataloader``, re-wrapped in a sequential loader with its
            ``collate_fn``, restricted to the samples its sampler draws from (a ``SubsetRandomSampler`` or an
            index list: the train part of a split; docs/guide.md).
        dataloader: a finite loader over the samples to certify, iterated as given (samples are identified by
            their position in it); not with DDP, where ``dataset`` lets the monitor shard the data.
        weights: sample weights ``μ``: ``"uniform"``, ``"balanced"`` (each class gets the same total mass) or a
            tensor with one non-negative weight per sample of the dataset (weight-zero samples are left out of
            everything); default ``None``: the training loader's ``WeightedRandomSampler`` weights if it has one
            (training lowers that weighted loss; the summary says so), else uniform.
        ignore_index: the label of samples outside the certified set, as ``torch.nn.functional.cross_entropy``'s
            ``ignore_index`` (default −100, used by Hugging Face datasets): weight zero, counted and reported;
            ``None``: every label must be a class.
        forward_fn: ``forward_fn(pl_module, batch) -> (logits [B, K], targets [B])``; default
            ``(pl_module(x), y)`` for ``(x, y)`` batches.
        batch_size: batch size of the margin pass; default ``max(256, 4 × the training batch size)``.
        num_workers: workers of the margin loader.
        stochastic_data: what to do when the certified samples are random (two reads of the same indices give
            different outputs, e.g. augmentation in the training Dataset): ``"error"`` stops before training and
            says how to pass a deterministic view (``dataset=`` with evaluation transforms); ``"approximate"``
            certifies one random draw per check and labels every summary as approximate.
        every_n_epochs: **When.** Run the check after every n-th training epoch.
        check_at_start: also check once when training starts (the reference for the first epoch).
        tol: **What counts as an event.** Accuracy drop (absolute) tolerated before a loss decrease counts as an
            instability event.
        stop_on_instability: stop training after ``patience`` consecutive instability events.
        patience: number of consecutive instability events that stop training.
        verbose: **What to log.** Print a one-line summary of every check (rank zero).
        quantiles: margin quantiles to log.
        log_histogram: log ``stability/margins`` as a TensorBoard histogram at every check.
        log_figure: log a TensorBoard figure of the empirical ``F`` against the Theorem A and B envelopes
            (needs matplotlib).
        log_cost: log what each check costs under ``stability_cost/`` (seconds of the margin pass and of the theory
            step, and their sum over the training time of the epoch).
        blame_size: how many worst-margin samples each check blames (and the cells per row of a blame grid); at an
            instability event the monitor logs ``stability/blame``, a grid of the blamed samples with their labels
            and predictions (docs/samples.md).
        to_image: ``to_image(dataset[i]) -> tensor``, the picture of a sample in the blame grids; default the input
            of an ``(x, y)`` item (an image ``[C, H, W]``/``[H, W]``, a flattened square, or a short vector).
        save_margins: **What to save.** A directory (or ``True`` for ``<log_dir>/margins``); every check writes
            its indices, targets, margins, losses and report as a ``.pt`` file (read by ``lightning-stability
            report``).
        save_samples: write ``samples.csv`` (per-sample dynamics, docs/samples.md) at fit end, into the
            ``save_margins`` directory if one is given, else the run directory; ``None`` follows ``save_margins``.
        sample_history: keep every check's per-sample margins in memory (``O(N × checks)``; default ``O(N)``).
        grid: **The certificate and the data.** Overrides of `lightning_stability.theory.CertificateGrid` passed
            to ``certify``.
        check_data: once at fit start, look for small isolated clusters in the training inputs (docs/theory.md §9,
            `lightning_stability.theory.data_clusters`) with the rows of the model's first ``nn.Linear`` as
            extra directions; logs ``stability/data/*`` and writes ``data_clusters.pt``/``.txt`` (witness
            indices) to the log directory. ``True`` uses the defaults; a dict passes keyword arguments.
        subset_size: **The statistical mode** for data too large to pass at every check (docs/cost.md): draw this
            many training indices once (with replacement, from ``μ``) and evaluate only them at the checks that are
            not full ones, logging estimates with confidence bounds under ``stability_estimate/`` (docs/theory.md
            §11). ``None`` (default): every check is the exact full one.
        confidence: ``1 − α`` of the statistical mode's bounds (Clopper–Pearson accuracy bound, DKW quantile band).
        full_every_n_epochs: in statistical mode, run the exact full check (the proven floors under
            ``stability/``) after every m-th epoch instead of the subset check; ``None``: never.
        subset_seed: seed of the statistical mode's draw.

    Attributes:
        batch_size: the margin pass's batch size, as given; every other option is readable under its name too
            (``monitor.tol``, ``monitor.save_margins``, …).
        last_report: the last exact check's `lightning_stability.theory.StabilityReport` (``None`` before one).
        last_estimate: the last subset check's `lightning_stability.theory.SubsetEstimate` (statistical mode).
        last_pass: the last check's margin pass (`lightning_stability.records.MarginPass`).
        last_metrics: every value the last check logged under ``stability/``, ``stability_diagnostics/`` or
            ``stability_estimate/``, under its logged name (its cost is in ``last_cost``).
        last_cost: the last check's ``stability_cost/…`` values, logged after the rest of that check (``{}``
            with ``log_cost=False``).
        stop_reason: why the monitor stopped training (``None`` if it did not).
        checks_done: the checks run so far (exact and subset ones, the check at the start included).
        instability_count: the exact checks' instability events so far.
        instability_epochs: the epochs of those events.
        weights_source: where the checks' weights ``μ`` come from: ``"uniform"``, ``"balanced"``, ``"tensor"``
            (the ``weights`` option) or ``"sampler"`` (the training loader's ``WeightedRandomSampler``); set when
            training starts.
        data_report: the data check's `lightning_stability.theory.DataClusterReport` (``check_data=``).

    Raises:
        MisconfigurationError: on invalid options (here); and when training starts, before the first step: if the
            training data cannot be found or is not map-style, the training sampler's samples cannot be known
            (a custom sampler: pass ``dataset=`` or ``weights=``), ``weights`` has not one entry per sample, the
            first batch has labels outside the classes or soft labels, or the model's output holds no class
            scores (``forward_fn`` does not return ``(logits [B, K], targets [B])``); at setup, if the Trainer
            has a second monitor of this class.

    Non-finite class scores at a check (a diverged model) raise nothing: the monitor warns, keeps the reason in
    ``stop_reason`` and stops training as ``EarlyStopping(check_finite=True)`` does, keeping every file.

    Example:

        >>> from pytorch_lightning import Trainer
        >>> from lightning_stability import StabilityMonitor
        >>> monitor = StabilityMonitor(every_n_epochs=1, stop_on_instability=True, patience=2)
        >>> trainer = Trainer(callbacks=[monitor], max_epochs=3)  # doctest: +SKIP
    """


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


class StabilityOptionAttributes:
    """The options that live in the monitor's parts, readable on the monitor under their own names (as Lightning's
    callbacks expose theirs, and as ``LightningCLI`` configs name them); the parts stay their only home."""

    settings: CheckSettings
    source: MarginSource
    outputs: RunOutputs
    publisher: CheckPublisher
    draw: SubsetDraw
    statistics: SampleStatistics
    cost: CheckCost

    @property
    def forward_fn(self) -> ForwardFn:
        """``forward_fn(pl_module, batch) -> (logits, targets)`` of the margin pass."""
        return self.source.forward_fn

    @property
    def ignore_index(self) -> int | None:
        """The label of samples outside the certified set (``None``: every label is a class)."""
        return self.source.ignore_index

    @property
    def batch_size(self) -> int | None:
        """The margin pass's batch size (``None``: chosen from the training batch size)."""
        return self.source.batch_size

    @property
    def num_workers(self) -> int:
        """Workers of the margin loader."""
        return self.source.num_workers

    @property
    def quantiles(self) -> tuple[float, ...]:
        """The margin quantiles logged."""
        return self.settings.quantiles

    @property
    def grid(self) -> dict[str, Any]:
        """The overrides of `lightning_stability.theory.CertificateGrid`."""
        return dict(self.settings.grid)

    @property
    def confidence(self) -> float:
        """``1 − α`` of the statistical mode's bounds."""
        return self.settings.confidence

    @property
    def blame_size(self) -> int:
        """The worst-margin samples blamed per check."""
        return self.settings.blame_size

    @property
    def to_image(self) -> Any:
        """The picture of a sample in the blame grids."""
        return self.publisher.pictures.to_image

    @property
    def log_histogram(self) -> bool:
        """Whether ``stability/margins`` is logged as a histogram."""
        return self.publisher.histogram

    @property
    def log_figure(self) -> bool:
        """Whether the envelope figure is logged."""
        return self.publisher.figure

    @property
    def log_cost(self) -> bool:
        """Whether ``stability_cost/…`` is logged."""
        return self.cost.enabled

    @property
    def save_margins(self) -> str | Path | bool | None:
        """Where margin files go, as given."""
        return self.outputs.save_margins

    @property
    def save_samples(self) -> bool | None:
        """Whether ``samples.csv`` is written, as given (``None``: follows ``save_margins``)."""
        return self.outputs.save_samples

    @property
    def sample_history(self) -> bool:
        """Whether every check's per-sample margins are kept."""
        return self.statistics.keep_history

    @property
    def subset_seed(self) -> int:
        """The statistical mode's seed."""
        return self.draw.seed
