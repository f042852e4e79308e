"""The data-cluster check around `data_clusters` (docs/theory.md §9).

Which training inputs form small isolated clusters? Used by ``StabilityMonitor(check_data=...)`` once at fit
start (`run_data_check`) and by the ``lightning-stability check-data`` command: the model's first-layer
rows as extra directions (`first_linear_rows`) and a readable table (`data_check_table`). The
files are written by `lightning_stability.files`, the witness picture by
`lightning_stability.figures.data_check.witness_figure`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import theory
from .distributions import rank_zero_info
from .files import save_data_check
from .loggers import log_metrics_now

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["data_check_table", "first_linear_rows", "run_data_check"]


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
    """Run `data_clusters` on ``dataset`` (its ``x``), with the rows of the
    model's first linear layer as extra directions, log ``stability/data/*`` and write the witness.

    Every rank computes the same report from the full dataset (deterministic: fixed order, seeded directions).
    Rank zero logs it and writes ``output_dir/data_clusters.pt`` (report, directions, witness indices) and
    ``output_dir/data_clusters.txt`` (the readable table); no file for ``output_dir=None`` (``fast_dev_run``).
    """
    settings = dict(settings)
    rows = first_linear_rows(pl_module)
    if rows is not None:
        given = settings.pop("extra_directions", None)
        settings["extra_directions"] = rows if given is None else torch.cat([torch.as_tensor(given).double(), rows])
    loader = DataLoader(dataset, batch_size=settings.pop("batch_size", 4096), shuffle=False, collate_fn=collate_fn)
    report = theory.data_clusters(loader, **settings)
    if trainer.is_global_zero:
        metrics = {f"stability/data/{key}": value for key, value in report.to_dict().items()}
        log_metrics_now(trainer, metrics)
        table = data_check_table(report)
        where = (
            "not written: fast_dev_run" if output_dir is None else str(save_data_check(output_dir, report, table)[1])
        )
        rank_zero_info(trainer, f"[StabilityMonitor] data check ({where}):\n{table}")
    return report
