"""File formats the monitors write and the CLI reads: margin files and data-check files (save *and* load).

* **Margin file** ``margins_epoch=EEEE_step=SSSSSSSS.pt`` (``epoch=start`` for the check before training), one
  per check, written by ``StabilityMonitor(save_margins=...)``: a ``torch.save`` dict with ``epoch``,
  ``global_step``, ``indices``, ``targets``, ``margins`` (float64), ``losses`` (float64), ``num_classes`` and
  ``report`` (`to_dict`).
  With the `StabilityMonitor`'s sample tracking it also holds ``predicted``, ``blame`` (the blame sets' sample
  indices, docs/samples.md) and ``blame_cells`` (per set, the index, label, prediction and margin of its
  ``blame_size`` smallest margins, smallest first, the set's title ``why``, its size ``total`` and ``picked``,
  ``"smallest margins"``; `lightning_stability.callbacks.blame_pictures.blamed_samples`). Results only, never the
  data: 40 bytes a sample (five tensors of 8-byte numbers) plus 8 per blamed index and a few kB of report and
  framing; every tensor is written as its own values (a view into a larger storage, such as a dataset row, is
  copied first, since ``torch.save`` would write the whole storage). Files of earlier versions may hold
  ``pictures`` (the drawn inputs) in ``blame_cells`` and no ``margin``, ``why`` or ``total``, which the readers
  ignore or look up, and no ``picked``: their cells are a set's first ``blame_size`` indices.
* **Samples file** ``samples.csv`` (`save_samples_csv` / `load_samples_csv`): one row per training sample with the
  columns of `lightning_stability.dynamics.samples.SAMPLE_COLUMNS`; floats written exactly (``repr``), an empty
  ``first_learned_check`` for a sample that is not learned.
* **Data-check files** ``data_clusters.pt`` (the `DataClusterReport`'s
  tensors and summary) and ``data_clusters.txt`` (the readable table), written by
  ``StabilityMonitor(check_data=...)``.

Every file is written atomically (to a temporary file in the same directory, then renamed), so a reader never
sees half a file.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .dynamics.samples import SampleDynamics
    from .records import MarginPass
    from .theory import DataClusterReport, StabilityReport

__all__ = [
    "DATA_CHECK_FILE",
    "DATA_CHECK_TABLE",
    "check_writable",
    "load_data_check",
    "load_margin_files",
    "load_samples_csv",
    "margin_file_name",
    "run_directory",
    "save_data_check",
    "save_margin_file",
    "save_samples_csv",
]

DATA_CHECK_FILE = "data_clusters.pt"
DATA_CHECK_TABLE = "data_clusters.txt"


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write ``path`` through ``write(file)`` into a temporary sibling, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, mode) as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def run_directory(logger_dir: str | Path | None, root: str | Path) -> Path:
    """The output directory of one run: the logger's own run directory (TensorBoard, CSV: ``…/version_N``) if it
    has one, else a fresh ``<root>/stability_runs/version_N`` (the first free N, created here, so two runs never
    share it)."""
    if logger_dir is not None:
        return Path(logger_dir)
    parent = Path(root) / "stability_runs"
    parent.mkdir(parents=True, exist_ok=True)
    number = 0
    while True:
        candidate = parent / f"version_{number}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1


def check_writable(directory: Path, what: str) -> None:
    """Create ``directory`` and write (then remove) a probe file in it.

    Raises:
        PermissionError: naming ``what``, the path and the fix, if that fails.
    """
    try:
        _atomic_write(Path(directory) / ".write_probe", lambda file: file.write(b""))
        (Path(directory) / ".write_probe").unlink()
    except OSError as error:
        raise PermissionError(
            f"{what}: cannot write to {directory} ({error.strerror or error}); pass a writable directory."
        ) from error


def margin_file_name(epoch: int, global_step: int) -> str:
    """``margins_epoch=EEEE_step=SSSSSSSS.pt``; ``epoch=start`` for the check before training (``epoch < 0``)."""
    label = "start" if epoch < 0 else f"{epoch:04d}"
    return f"margins_epoch={label}_step={global_step:08d}.pt"


def save_margin_file(
    directory: Path,
    epoch: int,
    global_step: int,
    margin_pass: MarginPass,
    report: StabilityReport,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write one check's per-sample vectors and report to ``directory / margin_file_name(epoch, global_step)``;
    ``extra`` entries (tensors, lists, dicts of them) are added to the file. Each tensor is written on the CPU with
    its own values only (`_own_values`)."""
    content: dict[str, Any] = {
        **(extra or {}),
        "epoch": epoch,
        "global_step": global_step,
        "indices": margin_pass.indices,
        "targets": margin_pass.targets,
        "margins": margin_pass.margins,
        "losses": margin_pass.losses,
        "predicted": margin_pass.predicted,
        "num_classes": margin_pass.num_classes,
        "report": report.to_dict(),
    }
    content = _own_values(content)
    return _atomic_write(Path(directory) / margin_file_name(epoch, global_step), lambda file: torch.save(content, file))


def _own_values(value: Any) -> Any:
    """``value`` with every tensor in it (through dicts, lists and tuples) detached, on the CPU, and copied when it
    is a view into a larger storage: ``torch.save`` writes a tensor's whole storage, so a view of one dataset row
    would write the dataset."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.untyped_storage().nbytes() > tensor.numel() * tensor.element_size():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        return tensor
    if isinstance(value, dict):
        return {key: _own_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_own_values(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_own_values(item) for item in value)
    return value


def load_margin_files(log_dir: str | Path) -> list[dict[str, Any]]:
    """Every margin file under ``log_dir`` (searched recursively), in check order (global step, then epoch).

    Raises:
        FileNotFoundError: if there is none.
    """
    files = sorted(Path(log_dir).rglob("margins_epoch=*.pt"), key=lambda path: (path.parent, path.name))
    if not files:
        raise FileNotFoundError(
            f"no margin files (margins_epoch=*.pt) under {log_dir}; run training with "
            "StabilityMonitor(save_margins=True) (the example configs do) and pass its log directory."
        )
    checks = [torch.load(path, map_location="cpu", weights_only=True) for path in files]
    return sorted(checks, key=lambda check: (check["global_step"], check["epoch"]))


def save_samples_csv(path: str | Path, dynamics: SampleDynamics) -> Path:
    """Write ``dynamics`` as a CSV file at ``path`` (atomically): a header of the column names, one row per sample."""
    columns = dynamics.columns()
    lists = {name: column.tolist() for name, column in columns.items()}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for row in zip(*lists.values(), strict=True):
        writer.writerow(
            [
                ("" if value < 0 else str(value))
                if name == "first_learned_check"
                else (repr(float(value)) if isinstance(value, float) else str(value))
                for name, value in zip(columns, row, strict=True)
            ]
        )
    return _atomic_write(Path(path), lambda file: file.write(buffer.getvalue()), mode="w")


def load_samples_csv(path: str | Path) -> SampleDynamics:
    """Read a ``samples.csv`` (or the first one found under the directory ``path``) back into a `SampleDynamics`.

    Raises:
        FileNotFoundError: if there is none, saying how to get one.
        ValueError: if the file lacks a column.
    """
    from .dynamics.samples import SAMPLE_COLUMNS, SampleDynamics

    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob("samples.csv"))
        if not found:
            raise FileNotFoundError(
                f"no samples.csv under {path}; train with StabilityMonitor(save_samples=True) (or save_margins=True)."
            )
        path = found[-1]
    if not path.exists():
        raise FileNotFoundError(
            f"no samples file at {path}; train with StabilityMonitor(save_samples=True) (or save_margins=True)."
        )
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
        header = rows[0].keys() if rows else set()
    missing = [name for name in SAMPLE_COLUMNS if rows and name not in header]
    if missing:
        raise ValueError(f"{path} is not a samples file: it lacks the columns {missing}.")
    integers = {"index", "target", "forgetting_events", "first_learned_check", "predicted", "checks"}
    data = {}
    for name in SAMPLE_COLUMNS:
        if name in integers:
            values = [int(row[name]) if row[name] != "" else -1 for row in rows]
            data[name] = torch.tensor(values, dtype=torch.long)
        else:
            data[name] = torch.tensor([float(row[name]) for row in rows], dtype=torch.float64)
    return SampleDynamics(**data)


def save_data_check(directory: Path, report: DataClusterReport, table: str) -> tuple[Path, Path]:
    """Write ``directory/data_clusters.pt`` (the report's summary and tensors) and ``data_clusters.txt``
    (``table``, the readable text); returns both paths."""
    content = {
        "summary": report.to_dict(),
        "witness": report.witness,
        "witness_indices": report.witness_indices,
        "worst_direction": report.worst_direction,
        "worst_direction_kind": report.worst_direction_kind,
        "directions": report.directions,
        "kinds": list(report.kinds),
        "lower": report.lower,
        "upper": report.upper,
    }
    directory = Path(directory)
    data = _atomic_write(directory / DATA_CHECK_FILE, lambda file: torch.save(content, file))
    text = _atomic_write(directory / DATA_CHECK_TABLE, lambda file: file.write(table + "\n"), mode="w")
    return data, text


def load_data_check(path: str | Path) -> dict[str, Any]:
    """The content of a ``data_clusters.pt`` file (or of the one inside the directory ``path``)."""
    path = Path(path)
    if path.is_dir():
        path = path / DATA_CHECK_FILE
    if not path.exists():
        raise FileNotFoundError(f"no data-check file at {path}; run training with StabilityMonitor(check_data=True).")
    return torch.load(path, map_location="cpu", weights_only=True)
