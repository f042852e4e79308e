"""The data-cluster check around `data_clusters` (docs/theory.md §9).

Which training inputs form small isolated clusters? Used by ``StabilityMonitor(check_data=...)`` once at fit
start (`run_data_check`) and by the ``lightning-stability check-data`` command: the model's first-layer
rows as extra directions (`first_linear_rows`) and a readable table (`data_check_table`). The inputs of a
training batch are ``x`` of an ``(x, y, …)`` batch or a tensor batch itself (`default_inputs`), or what
``check_data={"input_fn": ...}`` returns for it (checked at construction by `check_data_settings`). The
files are written by `lightning_stability.files`, the witness picture by
`lightning_stability.figures.data_check.witness_figure`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from . import theory
from .distributions import MisconfigurationError, rank_zero_info
from .files import save_data_check
from .scalars import log_metrics_now

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = [
    "InputFn",
    "check_data_settings",
    "data_check_table",
    "default_inputs",
    "describe_batch",
    "first_linear_rows",
    "input_fn_example",
    "run_data_check",
]

InputFn = Callable[[Any], Tensor]
"""``input_fn(batch) -> inputs [B, ...]``: the inputs of a training batch whose clusters the data check looks for."""

_OWNER = "StabilityMonitor: check_data"


def input_fn_example(batch: Any = None) -> str:
    """An ``input_fn`` to show in a message: ``lambda batch: batch['<first key>']`` of a dict batch."""
    key = next((k for k in batch if isinstance(k, str)), None) if isinstance(batch, Mapping) else None
    return f"lambda batch: batch[{key or 'features'!r}]"


def _example(batch: Any = None) -> str:
    return f"check_data={{'input_fn': {input_fn_example(batch)}}}"


def check_data_settings(check_data: Any) -> None:
    """Raise a `MisconfigurationError` at construction if ``check_data``'s ``input_fn`` is neither ``None`` nor
    callable (the other settings are `theory.data_clusters`'s, checked when it runs)."""
    input_fn = check_data.get("input_fn") if isinstance(check_data, dict) else None
    if input_fn is not None and not callable(input_fn):
        raise MisconfigurationError(
            f"{_OWNER}'s `input_fn` must be a function of a training batch that returns its inputs tensor "
            f"[B, ...], e.g. {_example()}, or None for the default (`x` of `(x, y)` batches); got {input_fn!r}."
        )


def describe_batch(batch: Any) -> str:
    """``a dict batch with keys [...]``, ``a list batch of length 2 whose first entry is a str``, …"""
    if isinstance(batch, Mapping):
        return f"a {type(batch).__name__} batch with keys {list(batch)}"
    if isinstance(batch, list | tuple):
        first = type(batch[0]).__name__ if batch else "nothing"
        return f"a {type(batch).__name__} batch of length {len(batch)} whose first entry is a {first}"
    return f"a {type(batch).__name__} batch"


def default_inputs(batch: Any) -> Tensor:
    """The inputs of a batch by default: ``x`` of an ``(x, y, …)`` batch, or the batch itself if it is a tensor.

    Raises:
        MisconfigurationError: for any other batch (a dict, strings, …), naming ``check_data``'s ``input_fn``.
    """
    inputs = batch[0] if isinstance(batch, list | tuple) and batch else batch
    if not isinstance(inputs, Tensor):
        raise MisconfigurationError(
            f"{_OWNER} cannot read the inputs of {describe_batch(batch)}: by default it takes `x` of `(x, y)` batches "
            "or a tensor batch. Pass `input_fn`, a function of a training batch that returns the inputs tensor "
            f"[B, ...] whose clusters are looked for, e.g. `StabilityMonitor({_example(batch)})`."
        )
    return inputs


def _input_collate(collate_fn: Callable[[list[Any]], Any] | None, input_fn: InputFn | None) -> Callable[..., Tensor]:
    """The training ``collate_fn`` followed by the inputs of the batch, checked: a tensor ``[B, ...]`` of one row
    per item, else a `MisconfigurationError` naming ``input_fn``."""
    collate = collate_fn if collate_fn is not None else default_collate
    read = input_fn if input_fn is not None else default_inputs

    def collate_inputs(items: list[Any]) -> Tensor:
        batch = collate(items)
        if input_fn is None:
            inputs = read(batch)
        else:
            try:
                inputs = read(batch)
            except Exception as error:
                raise MisconfigurationError(
                    f"{_OWNER}'s `input_fn` failed on {describe_batch(batch)} ({type(error).__name__}: {error}); it "
                    f"must return the batch's inputs tensor [B, ...], e.g. {_example(batch)}."
                ) from error
        if not isinstance(inputs, Tensor) or inputs.dim() == 0 or inputs.shape[0] != len(items):
            got = (
                f"a tensor of shape {tuple(inputs.shape)}"
                if isinstance(inputs, Tensor)
                else f"a {type(inputs).__name__}"
            )
            where = "`input_fn`" if input_fn is not None else "the default (`x` of `(x, y)` batches)"
            raise MisconfigurationError(
                f"{_OWNER}: {where} gave {got} for a batch of {len(items)} samples; the inputs must be a tensor "
                f"[B, ...] with one row per sample (B = {len(items)}). Pass `input_fn`, e.g. {_example(batch)}."
            )
        return inputs

    return collate_inputs


def first_linear_rows(model: nn.Module) -> torch.Tensor | None:
    """Weight rows of the model's first `Linear` (the slabs its units ``|⟨w, x⟩ + b|`` see),
    without rows of norm zero; ``None`` if the model has no linear layer."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            rows = module.weight.detach().to(torch.float64).cpu()
            return rows[rows.norm(dim=1) > 0]
    return None


def data_check_table(report: theory.DataClusterReport) -> str:
    """A readable table of a `DataClusterReport`."""
    lines = [
        f"samples N = {report.num_samples}, directions = {report.directions.shape[0]} "
        f"({', '.join(f'{report.kinds.count(k)} {k}' for k in ('random', 'principal', 'extra') if k in report.kinds)})",
        f"settings: dilation Λ = {report.dilation:g}, max mass m = {report.max_mass:g}, "
        f"min cluster mass m_min = {report.min_cluster_mass:.4g}",
        "",
        f"{'directions':<12} {'κ_lo (min)':>12} {'κ_hi (min)':>12} {'violations':>11}",
    ]
    kinds = torch.tensor([("random", "principal", "extra").index(kind) for kind in report.kinds])
    for code, kind in enumerate(("random", "principal", "extra")):
        mask = kinds == code
        if bool(mask.any()):
            violations = int((report.upper[mask] <= 1 + 1e-12).sum())
            lines.append(
                f"{kind:<12} {float(report.lower[mask].min()):>12.4f} {float(report.upper[mask].min()):>12.4f} "
                f"{violations:>11d}"
            )
    lines.append(f"{'all':<12} {report.constant_lower:>12.4f} {report.constant_upper:>12.4f}")
    lines.append("")
    if report.witness is None:
        lines.append("no admissible slab: every slab's dilation exceeds the mass cap m.")
    else:
        centre, radius = report.witness
        verdict = (
            "an isolated cluster (proven violation: its dilated slab holds no more mass)"
            if report.violated
            else "the least-isolated slab found (no violation on the sampled directions; evidence, not proof)"
        )
        lines.append(
            f"worst direction: {report.worst_direction_kind}; slab |<u, x> - {centre:.4g}| <= {radius:.4g}: {verdict}"
        )
        shown = report.witness_indices[:20].tolist()
        more = "" if report.witness_indices.numel() <= 20 else f" … ({report.witness_indices.numel()} samples)"
        lines.append(f"samples inside: {shown}{more}")
    return "\n".join(lines)


def run_data_check(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    dataset: Dataset,
    collate_fn: Any,
    settings: dict[str, Any],
    output_dir: Path | None,
) -> theory.DataClusterReport:
    """Run `data_clusters` on ``dataset``'s inputs, with the rows of the model's first linear layer as extra
    directions, log ``stability/data/*`` and write the witness.

    The inputs of a batch (``collate_fn`` of the items) are ``settings["input_fn"](batch)`` if given, else
    `default_inputs`; the first-layer rows are left out (and the log says so) when that layer does not take
    as many features as the flattened inputs have (e.g. an embedding or a convolution comes first).

    Every rank computes the same report from the full dataset (deterministic: fixed order, seeded directions).
    Rank zero logs it and writes ``output_dir/data_clusters.pt`` (report, directions, witness indices) and
    ``output_dir/data_clusters.txt`` (the readable table); no file for ``output_dir=None`` (``fast_dev_run``).
    """
    check_data_settings(settings)
    settings = dict(settings)
    collate = _input_collate(collate_fn, settings.pop("input_fn", None))
    loader = DataLoader(dataset, batch_size=settings.pop("batch_size", 4096), shuffle=False, collate_fn=collate)
    first = next(iter(loader), None)  # any unreadable batch fails here, before the check's two passes
    features = None if first is None else first.reshape(first.shape[0], -1).shape[1]
    rows, note = first_linear_rows(pl_module), ""
    if rows is not None and features is not None and rows.shape[1] != features:
        note = (
            f"\n(the first nn.Linear takes {rows.shape[1]} features, the inputs have {features}: its rows are not "
            "used as directions)"
        )
        rows = None
    if rows is not None:
        given = settings.pop("extra_directions", None)
        settings["extra_directions"] = rows if given is None else torch.cat([torch.as_tensor(given).double(), rows])
    report = theory.data_clusters(loader, **settings)
    if trainer.is_global_zero:
        metrics = {f"stability/data/{key}": value for key, value in report.to_dict().items()}
        log_metrics_now(trainer, metrics)
        table = data_check_table(report)
        where = (
            "not written: fast_dev_run" if output_dir is None else str(save_data_check(output_dir, report, table)[1])
        )
        rank_zero_info(trainer, f"[StabilityMonitor] data check ({where}):\n{table}{note}")
    return report
