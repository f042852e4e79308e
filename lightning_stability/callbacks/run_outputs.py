"""Where a monitor's files go: one directory per run, checked writable before training (issue 13).

The run directory is the TensorBoard or CSV logger's ``version_N`` directory when the first logger is one of them,
else a fresh ``<default_root_dir>/stability_runs/version_N`` (`lightning_stability.files.run_directory`): two runs
never share an output directory. Rank zero chooses and checks; every rank gets its choice and its verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..distributions import MisconfigurationError
from ..files import check_writable, run_directory
from ..loggers import CSVAdapter, TensorBoardAdapter, adapter_for

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["check_output_directories", "choose_run_directory"]


def choose_run_directory(trainer: pl.Trainer) -> Path:
    """This run's output directory (see the module doc), the same on every rank."""
    logger = trainer.loggers[0] if trainer.loggers else None
    per_run = logger is not None and isinstance(adapter_for(logger), TensorBoardAdapter | CSVAdapter)
    chosen = ""
    if trainer.is_global_zero:
        logger_dir = logger.log_dir if per_run and logger is not None else None
        chosen = str(run_directory(logger_dir, trainer.default_root_dir))
    return Path(trainer.strategy.broadcast(chosen, src=0))


def check_output_directories(trainer: pl.Trainer, targets: dict[str, Path | None]) -> None:
    """Raise a `MisconfigurationError` naming the option and the path if a directory of ``targets`` (option name
    → directory, ``None`` if unused) cannot be written; checked on rank zero, raised on every rank."""
    problem = None
    if trainer.is_global_zero:
        for option, target in targets.items():
            if target is not None:
                try:
                    check_writable(target, f"StabilityMonitor({option}=...)")
                except PermissionError as error:
                    problem = str(error)
                    break
    problem = trainer.strategy.broadcast(problem, src=0)
    if problem is not None:
        raise MisconfigurationError(problem)
