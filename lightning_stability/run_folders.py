"""The runs inside a folder given to ``lightning-stability report`` / ``samples``.

A *run* is a directory that holds margin files (``margins_epoch=*.pt``) or a ``samples.csv``; when the files lie
in the ``margins`` folder that ``StabilityMonitor(save_margins=True)`` writes, the run is the directory around it
(the logger's ``version_N``). A TensorBoard or CSV ``save_dir`` with ``version_0`` and ``version_1`` holds two runs;
their files are never merged into one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunFolder", "RunFolderError", "find_runs"]

MARGIN_PATTERN = "margins_epoch=*.pt"


class RunFolderError(ValueError):
    """The folder is missing, is not a folder, holds no run, or holds runs inside one another."""


@dataclass(frozen=True)
class RunFolder:
    """One run under the folder given on the command line."""

    name: str
    """The run's path relative to that folder, ``/`` written ``_`` (``version_0``); ``"."`` for the folder itself."""
    directory: Path
    """The run's directory (``version_N``), where its TensorBoard event files and ``samples.csv`` are."""
    has_margins: bool
    """Whether it holds margin files (in ``directory`` or ``directory/margins``)."""


def _run_directory(folder: Path, root: Path) -> Path:
    return folder.parent if folder.name == "margins" and folder != root else folder


def find_runs(log_dir: str | Path, need_margins: bool = False) -> list[RunFolder]:
    """The runs under ``log_dir``, sorted by path (``version_2`` before ``version_10``).

    With ``need_margins`` only the runs with margin files count (``report``); otherwise a ``samples.csv`` alone
    makes a run too (``samples``).

    Raises:
        RunFolderError: if ``log_dir`` does not exist or is not a directory, holds no run, or a run's directory
            lies inside another run's (their files could not be told apart).
    """
    root = Path(log_dir)
    if not root.exists():
        raise RunFolderError(f"{root} does not exist")
    if not root.is_dir():
        raise RunFolderError(f"{root} is not a directory (pass a run's log directory)")
    margins = {_run_directory(path.parent, root) for path in root.rglob(MARGIN_PATTERN)}
    directories = set(margins)
    if not need_margins:
        directories |= {path.parent for path in root.rglob("samples.csv")}
    if not directories:
        wanted = "margin files (margins_epoch=*.pt)" if need_margins else "samples.csv nor margin files"
        raise RunFolderError(
            f"{'no' if need_margins else 'neither'} {wanted} under {root}; train with "
            "StabilityMonitor(save_margins=True) and pass the run's log directory"
        )
    for directory in directories:
        for other in directories:
            if other != directory and other.is_relative_to(directory):
                raise RunFolderError(f"the run {other} lies inside the run {directory}; pass one of them, not {root}")

    def natural(directory: Path) -> list[tuple[int, int | str]]:
        parts = re.split(r"(\d+)", directory.relative_to(root).as_posix())
        return [(0, int(part)) if part.isdigit() else (1, part) for part in parts if part]

    return [
        RunFolder(directory.relative_to(root).as_posix().replace("/", "_"), directory, directory in margins)
        for directory in sorted(directories, key=natural)
    ]
