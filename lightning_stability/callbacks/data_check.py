"""The StabilityMonitor's ``check_data`` option: THEORY.md §9 on the training inputs, once at fit start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from .. import theory
from ..check_data import first_linear_rows, format_report
from ..reporting import log_out_of_epoch

__all__ = ["run_data_check"]


def run_data_check(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    dataset: Dataset,
    collate_fn: Any,
    settings: dict[str, Any],
    output_dir: Path,
) -> theory.DataClusterReport:
    """Run :func:`~lightning_stability.theory.data_clusters` on ``dataset`` (its ``x``), with the rows of the
    model's first linear layer as extra directions, log ``stability/data/*`` and write the witness.

    Every rank computes the same report from the full dataset (deterministic: fixed order, seeded directions).
    Rank zero logs it and writes ``output_dir/data_clusters.pt`` (report, directions, witness indices) and
    ``output_dir/data_clusters.txt`` (the readable table).
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
        log_out_of_epoch(trainer, metrics)
        output_dir.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "summary": report.to_dict(),
                "witness": report.witness,
                "witness_indices": report.witness_indices,
                "worst_direction": report.worst_direction,
                "worst_direction_kind": report.worst_direction_kind,
                "directions": report.directions,
                "kinds": list(report.kinds),
                "lower": report.lower,
                "upper": report.upper,
            },
            output_dir / "data_clusters.pt",
        )
        (output_dir / "data_clusters.txt").write_text(format_report(report) + "\n")
        rank_zero_info(f"[StabilityMonitor] data check ({output_dir / 'data_clusters.txt'}):\n{format_report(report)}")
    return report
