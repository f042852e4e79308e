"""StabilityMonitor(check_data=...): the data check of docs/theory.md §9, exactly once at fit start.

The expected values are not asked from ``theory.data_clusters``: the test counts the calls, recomputes the extra and
principal directions from the model and the inputs, and recounts the witness slab on the raw inputs (NumPy).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import TensorDataset

import lightning_stability.data_check
import lightning_stability.theory
from lightning_stability import StabilityMonitor
from lightning_stability.files import load_margin_files

from ..helpers import MLP, SMALL_GRID, csv_rows, fit, make_data

pytestmark = [
    # the synthetic inputs (10 features) are no image and longer than a short vector: the monitor says once that
    # it draws no blame grid; incidental to what these tests check
    pytest.mark.filterwarnings("ignore:StabilityMonitor\\x3a the training inputs are neither images:UserWarning"),
]

HIDDEN = 6
SETTINGS = dict(n_random=8, n_principal=2, min_cluster_mass=0.01)


def counting(monkeypatch, module, name: str) -> list:
    """Replace ``module.name`` by a wrapper that records each call's result; returns the list of results."""
    original, results = getattr(module, name), []

    def wrapper(*args, **kwargs):
        results.append(original(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(module, name, wrapper)
    return results


def test_check_data_runs_once_with_the_first_layer_rows_and_writes_the_witness(tmp_path, monkeypatch):
    x, y = make_data(600)
    planted = torch.arange(40, 52)
    x[planted] = 9.0 + 0.01 * torch.randn(12, x.shape[1], generator=torch.Generator().manual_seed(0))
    monitor = StabilityMonitor(grid=SMALL_GRID, check_data=SETTINGS, check_at_start=False, save_margins=True)
    model = MLP(hidden=HIDDEN)
    first_layer = model.net[0].weight.detach().double().clone()
    reports = counting(monkeypatch, lightning_stability.theory, "data_clusters")
    saves = counting(monkeypatch, lightning_stability.data_check, "save_data_check")
    logger = CSVLogger(tmp_path)
    fit([monitor], model, TensorDataset(x, y), max_epochs=2, logger=logger, default_root_dir=tmp_path)

    # exactly once, at fit start, over two epochs and two checks
    assert monitor.checks_done == 2
    assert len(reports) == 1 and len(saves) == 1
    report = monitor.data_report
    assert report is reports[0]
    rows = csv_rows(logger.log_dir, "stability/data/constant_upper")
    assert len(rows) == 1

    # the directions: 8 random, the 2 top principal ones, the 6 first-layer rows, all unit vectors
    assert report.kinds == ("random",) * 8 + ("principal",) * 2 + ("extra",) * HIDDEN
    directions = report.directions.numpy()
    assert np.allclose(np.linalg.norm(directions, axis=1), 1.0, rtol=0, atol=1e-12)
    rows_normalised = first_layer.numpy() / np.linalg.norm(first_layer.numpy(), axis=1, keepdims=True)
    assert np.allclose(directions[-HIDDEN:], rows_normalised, rtol=0, atol=1e-12)
    inputs = x.double().numpy()
    _, vectors = np.linalg.eigh(np.cov(inputs, rowvar=False, bias=True))
    for direction, vector in zip(directions[8:10], vectors[:, ::-1].T):
        assert abs(float(direction @ vector)) > 1 - 1e-9  # the same eigenvector, up to sign

    # the witness, recounted on the inputs: the planted samples, alone in the slab and in its dilation
    u = report.worst_direction.numpy()
    assert any(np.array_equal(u, d) for d in directions)
    centre, radius = report.witness
    projections = inputs @ u
    inside = np.flatnonzero(np.abs(projections - centre) <= radius)
    dilated = np.flatnonzero(np.abs(projections - centre) <= report.dilation * radius)
    assert inside.tolist() == report.witness_indices.tolist() == planted.tolist()
    assert dilated.tolist() == inside.tolist(), "an isolated cluster: the dilated slab gains no mass"
    assert report.violated and report.constant_upper == len(dilated) / len(inside) == 1.0
    # the slab is admissible (§9): 2r ≥ h, m_min ≤ μ(P), μ(ΛP) ≤ m
    low, high = np.quantile(projections, [0.05, 0.95])
    assert 2 * radius >= 0.1 * (high - low) * (1 - 1e-12)
    assert SETTINGS["min_cluster_mass"] <= len(inside) / 600 and len(dilated) / 600 <= report.max_mass == 0.05

    # every check blames the planted cluster (docs/samples.md S4): its indices in each per-check file
    files = load_margin_files(logger.log_dir)
    assert len(files) == 2
    assert all(f["blame"]["data_cluster"].tolist() == planted.tolist() for f in files)
    assert report.min_cluster_mass == SETTINGS["min_cluster_mass"]

    # logged once, and the files
    (row,) = rows
    assert float(row["stability/data/violated"]) == 1.0
    assert float(row["stability/data/witness_size"]) == 12.0
    assert float(row["stability/data/num_directions"]) == 8 + 2 + HIDDEN
    assert float(row["stability/data/min_cluster_mass"]) == SETTINGS["min_cluster_mass"]
    log_dir = tmp_path / "lightning_logs" / "version_0"
    saved = torch.load(log_dir / "data_clusters.pt", weights_only=True)
    assert saved["witness_indices"].tolist() == planted.tolist()
    assert "isolated cluster" in (log_dir / "data_clusters.txt").read_text()
