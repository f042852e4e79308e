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

__all__ = ["RunOutputs", "check_output_directories", "choose_run_directory"]


def choose_run_directory(trainer: pl.Trainer, option: str = "save_margins") -> Path:
    """This run's output directory (see the module doc), the same on every rank.

    Raises:
        MisconfigurationError: on every rank, naming ``option`` (the option that needs the run directory) and the
            path, if rank zero cannot create ``<default_root_dir>/stability_runs/version_N``.
    """
    logger = trainer.loggers[0] if trainer.loggers else None
    per_run = logger is not None and isinstance(adapter_for(logger), TensorBoardAdapter | CSVAdapter)
    chosen, problem = "", None
    if trainer.is_global_zero:
        logger_dir = logger.log_dir if per_run and logger is not None else None
        try:
            chosen = str(run_directory(logger_dir, trainer.default_root_dir))
        except OSError as error:
            parent = Path(trainer.default_root_dir) / "stability_runs"
            problem = (
                f"StabilityMonitor({option}=...): cannot create the run directory under {parent} "
                f"({error.strerror or error}); pass a writable Trainer(default_root_dir=...) or a TensorBoard/CSV "
                "logger with a writable save_dir."
            )
    chosen, problem = trainer.strategy.broadcast((chosen, problem), src=0)
    if problem is not None:
        raise MisconfigurationError(problem)
    return Path(chosen)


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


class RunOutputs:
    """The `StabilityMonitor`'s output directories for one run (see the module doc).

    Args:
        save_margins: a directory for the margin files, ``True`` for ``<run directory>/margins``, or off.
        save_samples: write ``samples.csv``; ``None`` follows ``save_margins``.
        data_check: whether the data check writes its files (into the run directory).
    """

    def __init__(self, save_margins: str | Path | bool | None, save_samples: bool | None, data_check: bool) -> None:
        self.save_margins, self.save_samples, self.data_check = save_margins, save_samples, data_check
        self.run_dir: Path | None = None
        self.smoke_test = False
        """``fast_dev_run``: Lightning writes no files in a smoke test, nor does the monitor."""

    def setup(self, trainer: pl.Trainer) -> None:
        """Choose this run's directory (if a file goes there) and check every directory is writable; under
        ``fast_dev_run`` no file is written at all."""
        self.smoke_test = bool(getattr(trainer, "fast_dev_run", False))
        if self.smoke_test:
            self.run_dir = None
            return
        needs_run_dir = {  # the options that write into the run directory, in the order they are named
            "save_margins": self.save_margins is True,
            "check_data": self.data_check,
            "save_samples": bool(self.save_samples and not self.save_margins),
        }
        first = next((option for option, needs in needs_run_dir.items() if needs), None)
        self.run_dir = choose_run_directory(trainer, first) if first is not None else None
        check_output_directories(
            trainer,
            {
                "save_margins": self.margins_dir(trainer),
                "check_data": self.run_dir if self.data_check else None,
                "save_samples": self.samples_dir(trainer),
            },
        )

    def margins_dir(self, trainer: pl.Trainer) -> Path | None:
        """Where margin files go: ``save_margins``, or ``<run directory>/margins`` for ``save_margins=True`` — the
        TensorBoard/CSV logger's ``version_N`` directory, else a fresh ``<default_root_dir>/stability_runs/version_N``.
        """
        if self.save_margins is None or self.save_margins is False or self.smoke_test:
            return None
        if self.save_margins is True:
            return (self.run_dir or Path(trainer.default_root_dir)) / "margins"
        return Path(self.save_margins)

    def samples_dir(self, trainer: pl.Trainer) -> Path | None:
        """Where ``samples.csv`` goes: the ``save_margins`` directory if one is given, else the run directory;
        ``None`` if it is not written."""
        if self.smoke_test or not (bool(self.save_margins) if self.save_samples is None else self.save_samples):
            return None
        if self.save_margins and self.save_margins is not True:
            return Path(self.save_margins)
        return self.run_dir or Path(trainer.default_root_dir)

    def data_check_dir(self, trainer: pl.Trainer) -> Path | None:
        """Where the data check writes: the run directory, else ``default_root_dir``; nowhere under
        ``fast_dev_run``."""
        return None if self.smoke_test else self.run_dir or Path(trainer.default_root_dir)
