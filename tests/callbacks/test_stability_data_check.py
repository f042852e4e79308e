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


# ---------------------------------------------------------------------------------------------------- dict batches


def breast_cancer() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's breast-cancer set (569 samples, 30 features), standardized, as float32 inputs and labels."""
    from sklearn.datasets import load_breast_cancer

    features, target = load_breast_cancer(return_X_y=True)
    x = torch.tensor(features, dtype=torch.float32)
    return (x - x.mean(0)) / x.std(0), torch.tensor(target)


class Records(torch.utils.data.Dataset):
    """The samples as ``{"features": x, "target": y}`` dicts."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.x[index], "target": self.y[index]}


def tabular_module():
    """A 30 → 8 → 2 |x| network written with ``lightning.pytorch``; reads dict and ``(x, y)`` batches alike."""
    import lightning.pytorch as L
    from torch import nn

    from lightning_stability import AbsoluteValue

    class Tabular(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(30, 8), AbsoluteValue(), nn.Linear(8, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch, batch_index: int) -> torch.Tensor:
            x, y = (batch["features"], batch["target"]) if isinstance(batch, dict) else batch
            return nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    L.seed_everything(0)
    return Tabular(), L


def by_record(module, batch):
    return module(batch["features"]), batch["target"]


def fit_lightning(monitor: StabilityMonitor, dataset, root, **kwargs):
    """One epoch of ``lightning.pytorch`` (not ``pytorch_lightning``) on ``dataset``; returns the Trainer and model."""
    model, L = tabular_module()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor],
        default_root_dir=root,  # the run directory of the data-check files
        **kwargs,
    )
    trainer.fit(model, torch.utils.data.DataLoader(dataset, batch_size=64))
    return trainer, model


def test_check_data_on_dict_batches_with_input_fn_gives_the_tuple_batch_report(tmp_path):
    x, y = breast_cancer()
    settings = dict(SETTINGS, batch_size=100)  # several streamed batches
    reports = {}
    for kind, dataset, extra in (
        ("tuple", TensorDataset(x, y), {}),
        ("dict", Records(x, y), {"input_fn": lambda batch: batch["features"], "forward_fn": by_record}),
    ):
        check_data = {**settings, **({"input_fn": extra["input_fn"]} if extra else {})}
        forward = {"forward_fn": extra["forward_fn"]} if extra else {}
        monitor = StabilityMonitor(grid=SMALL_GRID, check_data=check_data, check_at_start=False, **forward)
        trainer, _ = fit_lightning(monitor, dataset, tmp_path / kind)
        assert trainer.current_epoch == 1 and monitor.checks_done == 1
        reports[kind] = monitor.data_report
    tuple_report, dict_report = reports["tuple"], reports["dict"]
    assert tuple_report.num_samples == dict_report.num_samples == 569
    assert dict_report.kinds == tuple_report.kinds == ("random",) * 8 + ("principal",) * 2 + ("extra",) * 8
    assert dict_report.to_dict() == tuple_report.to_dict()  # every logged number, exactly
    for field in ("directions", "lower", "upper", "resolutions", "witness_indices", "worst_direction"):
        assert torch.equal(getattr(dict_report, field), getattr(tuple_report, field)), field
    assert dict_report.witness == tuple_report.witness
    assert dict_report.constant_lower == tuple_report.constant_lower
    assert dict_report.constant_upper == tuple_report.constant_upper


def test_check_data_on_dict_batches_without_input_fn_fails_at_fit_start_naming_it(tmp_path):
    from lightning_stability.distributions import MisconfigurationError

    x, y = breast_cancer()
    monitor = StabilityMonitor(grid=SMALL_GRID, check_data=True, forward_fn=by_record)
    with pytest.raises(MisconfigurationError) as caught:
        fit_lightning(monitor, Records(x, y), tmp_path)
    message = str(caught.value)
    assert message.startswith("StabilityMonitor: check_data cannot read the inputs of a dict batch with keys ")
    assert "['features', 'target']" in message
    assert "Pass `input_fn`" in message
    assert "StabilityMonitor(check_data={'input_fn': lambda batch: batch['features']})" in message
    assert monitor.data_report is None and monitor.checks_done == 0


def test_check_data_fit_start_error_comes_before_any_epoch(tmp_path):
    import lightning.pytorch as L

    from lightning_stability.distributions import MisconfigurationError

    x, y = breast_cancer()
    model, _ = tabular_module()
    before = [p.detach().clone() for p in model.parameters()]
    monitor = StabilityMonitor(grid=SMALL_GRID, check_data={"n_random": 4}, forward_fn=by_record)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        callbacks=[monitor],
    )
    with pytest.raises(MisconfigurationError, match=r"^StabilityMonitor: check_data .*`input_fn`"):
        trainer.fit(model, torch.utils.data.DataLoader(Records(x, y), batch_size=64))
    assert trainer.current_epoch == 0 and trainer.global_step == 0
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))  # not one step


@pytest.mark.parametrize(
    ("check_data", "message"),
    [
        (
            {"input_fn": "features"},
            r"^StabilityMonitor: check_data's `input_fn` must be a function of a training batch",
        ),
        ({"input_fn": 3, "n_random": 4}, r"lambda batch: batch\['features'\].*got 3\.$"),
    ],
)
def test_check_data_input_fn_is_checked_at_construction(check_data, message):
    from lightning_stability.distributions import MisconfigurationError

    with pytest.raises(MisconfigurationError, match=message):
        StabilityMonitor(check_data=check_data)
    assert StabilityMonitor(check_data={"input_fn": None}).check_data == {"input_fn": None}
