"""StabilityMonitor(check_data=...): the data check of THEORY.md §9 once at fit start."""

from __future__ import annotations

import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import TensorDataset

from lightning_stability import StabilityMonitor, theory

from ..helpers import MLP, SMALL_GRID, fit, make_data


def test_check_data_runs_once_with_the_first_layer_rows_and_writes_the_witness(tmp_path):
    x, y = make_data(600)
    planted = torch.arange(40, 52)
    x[planted] = 9.0 + 0.01 * torch.randn(12, x.shape[1], generator=torch.Generator().manual_seed(0))
    settings = dict(n_random=8, n_principal=2, min_cluster_mass=0.01)
    monitor = StabilityMonitor(grid=SMALL_GRID, check_data=settings, check_at_start=False)
    model = MLP(hidden=6)
    first_layer = model.net[0].weight.detach().double().clone()
    fit([monitor], model, TensorDataset(x, y), max_epochs=2, logger=CSVLogger(tmp_path), default_root_dir=tmp_path)

    report = monitor.data_report
    expected = theory.data_clusters(x, extra_directions=first_layer, **settings)
    assert report.kinds.count("extra") == 6
    torch.testing.assert_close(report.upper, expected.upper)
    assert report.violated and report.witness_indices.tolist() == planted.tolist()
    log_dir = tmp_path / "lightning_logs" / "version_0"
    saved = torch.load(log_dir / "data_clusters.pt", weights_only=True)
    assert saved["witness_indices"].tolist() == planted.tolist()
    assert "isolated cluster" in (log_dir / "data_clusters.txt").read_text()
    metrics = (log_dir / "metrics.csv").read_text()
    assert "stability/data/constant_upper" in metrics and "stability/data/violated" in metrics
