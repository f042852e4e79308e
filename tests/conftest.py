"""Fixtures shared by the whole suite (the plain helpers they build on are in ``helpers.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from .helpers import REPO_ROOT

DDP_SCRIPT = Path(__file__).resolve().parent / "callbacks" / "ddp_script.py"


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path``, made the working directory (the CLI writes ``stability_logs/`` there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def csv_logger(tmp_path: Path) -> CSVLogger:
    """A CSVLogger writing ``tmp_path/csv/version_0/metrics.csv``."""
    return CSVLogger(tmp_path, name="csv", version=0)


@pytest.fixture
def tb_logger(tmp_path: Path) -> TensorBoardLogger:
    """A TensorBoardLogger writing to ``tmp_path/tb/version_0``."""
    return TensorBoardLogger(tmp_path, name="tb", version=0)


@pytest.fixture
def run_ddp(tmp_path: Path) -> Callable[[str], tuple[dict, dict]]:
    """``run_ddp(scenario)``: runs ``callbacks/ddp_script.py scenario`` (2 CPU processes, gloo) and returns what
    ranks 0 and 1 saved."""

    def run(scenario: str) -> tuple[dict, dict]:
        env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        env.pop("MASTER_PORT", None)
        result = subprocess.run(
            [sys.executable, str(DDP_SCRIPT), scenario, str(tmp_path)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"DDP run failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        zero, one = (torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in (0, 1))
        assert (zero["rank"], one["rank"]) == (0, 1) and zero["world_size"] == one["world_size"] == 2
        return zero, one

    return run
