"""lightning_stability.data_check: the first layer's rows, the readable table and run_data_check (docs/theory.md §9)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_stability import theory
from lightning_stability.activations import AbsoluteValue
from lightning_stability.data_check import data_check_table, first_linear_rows, run_data_check
from lightning_stability.distributions import MisconfigurationError
from lightning_stability.files import DATA_CHECK_FILE, DATA_CHECK_TABLE


def test_first_linear_rows_are_the_first_linear_layer_without_zero_rows() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 3), AbsoluteValue(), nn.Linear(3, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 2.0], [0.0, 0.0], [-3.0, 0.5]]))
        model[3].weight.fill_(7.0)
    rows = first_linear_rows(model)
    assert rows is not None and rows.dtype == torch.float64
    assert rows.tolist() == [[1.0, 2.0], [-3.0, 0.5]]  # the zero row is left out; not the second layer's
    assert first_linear_rows(nn.Sequential(nn.Conv1d(1, 1, 3), nn.ReLU())) is None


def cluster_report(**changes) -> theory.DataClusterReport:
    """A hand-made report: 2 random, 1 principal and 1 extra direction; the second random one has κ_hi = 1."""
    fields = dict(
        constant_lower=0.9,
        constant_upper=1.0,
        worst_direction=torch.tensor([1.0, 0.0], dtype=torch.float64),
        worst_direction_kind="random",
        witness=(2.0, 0.5),
        witness_indices=torch.tensor([4, 7, 9]),
        directions=torch.zeros(4, 2, dtype=torch.float64),
        kinds=("random", "random", "principal", "extra"),
        lower=torch.tensor([1.5, 1.2, 2.0, 0.9], dtype=torch.float64),
        upper=torch.tensor([1.8, 1.0, 2.5, 1.1], dtype=torch.float64),
        resolutions=torch.full((4,), 0.1, dtype=torch.float64),
        max_mass=0.05,
        min_cluster_mass=0.0025,
        dilation=2.0,
        num_samples=40,
    )
    return theory.DataClusterReport(**{**fields, **changes})


def test_data_check_table_of_a_violation() -> None:
    assert data_check_table(cluster_report()).splitlines() == [
        "samples N = 40, directions = 4 (2 random, 1 principal, 1 extra)",
        "settings: dilation Λ = 2, max mass m = 0.05, min cluster mass m_min = 0.0025",
        "",
        "directions     κ_lo (min)   κ_hi (min)  violations",
        "random             1.2000       1.0000           1",
        "principal          2.0000       2.5000           0",
        "extra              0.9000       1.1000           0",
        "all                0.9000       1.0000",
        "",
        "worst direction: random; slab |<u, x> - 2| <= 0.5: an isolated cluster (proven violation: its dilated slab "
        "holds no more mass)",
        "samples inside: [4, 7, 9]",
    ]


def test_data_check_table_without_violation_shows_twenty_samples() -> None:
    report = cluster_report(
        constant_upper=1.25,
        kinds=("random", "random", "principal", "principal"),
        upper=torch.tensor([1.8, 1.25, 2.5, 1.3], dtype=torch.float64),
        witness=(-1.5, 0.25),
        witness_indices=torch.arange(25),
        worst_direction_kind="principal",
    )
    lines = data_check_table(report).splitlines()
    assert lines[0] == "samples N = 40, directions = 4 (2 random, 2 principal)"
    assert [line.split()[0] for line in lines[4:7]] == ["random", "principal", "all"]  # no extra row
    assert lines[4].split()[1:] == ["1.2000", "1.2500", "0"]
    assert lines[-2] == (
        "worst direction: principal; slab |<u, x> - -1.5| <= 0.25: the least-isolated slab found (no violation on "
        "the sampled directions; evidence, not proof)"
    )
    assert lines[-1] == f"samples inside: {list(range(20))} … (25 samples)"


def test_data_check_table_without_an_admissible_slab() -> None:
    report = cluster_report(witness=None, witness_indices=torch.zeros(0, dtype=torch.long), constant_upper=1.5)
    assert data_check_table(report).splitlines()[-1] == (
        "no admissible slab: every slab's dilation exceeds the mass cap m."
    )


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[dict, int]] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.calls.append((dict(metrics), step))


def planted() -> tuple[torch.Tensor, nn.Module]:
    # 36 inputs on a 6 × 6 grid of [0, 1]², and samples 36..39 at (9, 9): an isolated cluster of mass 0.1
    grid = torch.stack(torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij"), -1).reshape(-1, 2) / 5
    x = torch.cat([grid, torch.full((4, 2), 9.0)])
    model = nn.Sequential(nn.Linear(2, 2), AbsoluteValue(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    return x, model


def test_run_data_check_logs_writes_and_adds_the_first_layer_rows(tmp_path: Path) -> None:
    x, model = planted()
    logger = Recorder()
    trainer = SimpleNamespace(is_global_zero=True, loggers=[logger], global_step=7)
    settings = {"n_random": 2, "n_principal": 1, "max_mass": 0.2, "min_cluster_mass": 0.05, "batch_size": 16}
    given = torch.tensor([[0.0, 2.0]])
    report = run_data_check(
        trainer, model, TensorDataset(x, torch.zeros(40)), None, {**settings, "extra_directions": given}, tmp_path
    )
    assert "extra_directions" not in settings and settings["batch_size"] == 16  # the caller's dict is untouched
    # the given direction, then the one non-zero first-layer row (3, 4)/5, both normalised
    assert report.kinds == ("random", "random", "principal", "extra", "extra")
    assert report.directions[-2:].tolist() == [[0.0, 1.0], [0.6, 0.8]]
    assert report.violated and report.witness_indices.tolist() == [36, 37, 38, 39]
    ((metrics, step),) = logger.calls
    assert step == 7
    assert metrics["stability/data/violated"] == 1.0 and metrics["stability/data/witness_size"] == 4.0
    assert metrics["stability/data/num_directions"] == 5.0
    assert set(metrics) == {f"stability/data/{key}" for key in report.to_dict()}
    assert (tmp_path / DATA_CHECK_TABLE).read_text() == data_check_table(report) + "\n"
    assert (tmp_path / DATA_CHECK_FILE).is_file()


def test_run_data_check_off_rank_zero_neither_logs_nor_writes(tmp_path: Path) -> None:
    x, model = planted()
    logger = Recorder()
    trainer = SimpleNamespace(is_global_zero=False, loggers=[logger], global_step=0)
    settings = {"n_random": 2, "n_principal": 1, "max_mass": 0.2, "min_cluster_mass": 0.05}
    report = run_data_check(trainer, model, TensorDataset(x), None, settings, tmp_path / "out")
    assert report.witness_indices.tolist() == [36, 37, 38, 39]  # every rank computes it
    assert logger.calls == [] and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------- batch formats


class TokenRecords(torch.utils.data.Dataset):
    """Random token sequences as ``{"input_ids": [8], "labels": []}`` dicts."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(5)
        self.ids = torch.randint(0, 50, (80, 8), generator=generator)
        self.labels = self.ids[:, 0] % 2

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.labels[index]}


def token_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(50, 16), nn.Flatten(), nn.Linear(16 * 8, 4), AbsoluteValue(), nn.Linear(4, 2))


TOKEN_SETTINGS = {"n_random": 6, "n_principal": 2, "batch_size": 32, "max_mass": 0.2, "min_cluster_mass": 0.05}


def test_run_data_check_on_token_dicts_with_input_fn_is_the_tensor_report(caplog) -> None:
    data = TokenRecords()
    trainer = SimpleNamespace(is_global_zero=True, loggers=[Recorder()], global_step=0)
    settings = {**TOKEN_SETTINGS, "input_fn": lambda batch: batch["input_ids"]}
    with caplog.at_level("INFO"):
        report = run_data_check(trainer, token_model(), data, None, settings, None)
    expected = theory.data_clusters(data.ids, **TOKEN_SETTINGS)
    # the first nn.Linear reads the embeddings (128 features), not the 8 token ids: its rows are no direction
    assert report.kinds == expected.kinds == ("random",) * 6 + ("principal",) * 2
    assert report.to_dict() == expected.to_dict()
    assert torch.equal(report.upper, expected.upper) and torch.equal(report.lower, expected.lower)
    assert torch.equal(report.witness_indices, expected.witness_indices) and report.witness == expected.witness
    assert report.witness_indices.numel() > 0
    assert "the first nn.Linear takes 128 features, the inputs have 8: its rows are not used" in caplog.text
    # the same as (ids, labels) tuple batches
    tuples = run_data_check(trainer, token_model(), TensorDataset(data.ids, data.labels), None, TOKEN_SETTINGS, None)
    assert tuples.to_dict() == report.to_dict() and torch.equal(tuples.upper, report.upper)


class Strings(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> tuple[str, int]:
        return f"sample {index}", index % 2


def test_run_data_check_names_input_fn_for_batches_it_cannot_read() -> None:
    trainer = SimpleNamespace(is_global_zero=False, loggers=[], global_step=0)
    x, model = planted()
    cases = [
        (
            TokenRecords(),
            {},
            r"^StabilityMonitor: check_data cannot read the inputs of a dict batch with keys "
            r"\['input_ids', 'labels'\].*check_data=\{'input_fn': lambda batch: batch\['input_ids'\]\}",
        ),
        (
            Strings(),
            {},
            r"^StabilityMonitor: check_data cannot read the inputs of a list batch of length 2 whose "
            r"first entry is a tuple.*Pass `input_fn`",
        ),
        (
            TokenRecords(),
            {"input_fn": lambda batch: batch["input_ids"].flatten()},
            r"^StabilityMonitor: check_data: `input_fn` gave a tensor of shape \(256,\) for a batch of 32 samples; the "
            r"inputs must be a tensor \[B, \.\.\.\] with one row per sample \(B = 32\)",
        ),
        (
            TokenRecords(),
            {"input_fn": lambda batch: batch["ids"]},
            r"^StabilityMonitor: check_data's `input_fn` failed on a dict batch with keys \['input_ids', 'labels'\] "
            r"\(KeyError: 'ids'\)",
        ),
        (
            TokenRecords(),
            {"input_fn": lambda batch: batch["input_ids"].tolist()},
            r"^StabilityMonitor: check_data: `input_fn` gave a list for a batch of 32 samples",
        ),
    ]
    for dataset, settings, message in cases:
        with pytest.raises(MisconfigurationError, match=message):
            run_data_check(trainer, model, dataset, None, {**TOKEN_SETTINGS, **settings}, None)
