"""lightning_stability.files: margin files and data-check files round trip exactly, in check order, written
atomically (no temporary file left behind, an interrupted write keeps the previous file), and a missing file says
how to produce it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import StabilityMonitor, theory
from lightning_stability.data_check import data_check_table
from lightning_stability.files import (
    DATA_CHECK_FILE,
    DATA_CHECK_TABLE,
    load_data_check,
    load_margin_files,
    margin_file_name,
    save_data_check,
    save_margin_file,
)
from lightning_stability.records import BLAME_SETS, CAUSES_FIRST, MarginPass

from .callbacks.test_stability_instability import SCRIPT, ScriptedClassifier, weight_for
from .helpers import NUM_CLASSES, SMALL_GRID, make_data


def same_numbers(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal dicts of floats, NaN equal to NaN."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def check(seed: int, num_samples: int = 50) -> tuple[MarginPass, theory.StabilityReport]:
    """A margin pass over random logits (its own values for every seed) and its report."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_samples, NUM_CLASSES, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, NUM_CLASSES, (num_samples,), generator=generator)
    margins = theory.margins(logits, targets)
    losses = theory.per_sample_cross_entropy(logits, targets)
    margin_pass = MarginPass(torch.arange(num_samples), targets, margins, losses, logits.argmax(dim=1), NUM_CLASSES)
    report = theory.certify(margins, NUM_CLASSES, loss=float(losses.mean()), **SMALL_GRID)
    return margin_pass, report


def test_margin_file_names() -> None:
    assert margin_file_name(-1, 0) == "margins_epoch=start_step=00000000.pt"
    assert margin_file_name(12, 345) == "margins_epoch=0012_step=00000345.pt"


def test_margin_files_round_trip_exactly_in_check_order(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    # (epoch, global_step, directory), saved out of order; epoch 0 at step 0 ties with the start check on the step,
    # and its file name sorts before the start check's: the order must come from the steps, then the epochs
    saved = [
        (1, 26, log_dir / "margins"),
        (0, 0, log_dir / "margins"),
        (2, 39, log_dir / "resumed" / "margins"),  # found recursively
        (-1, 0, log_dir / "margins"),
        (0, 13, log_dir / "margins"),
    ]
    checks = {}
    for seed, (epoch, step, directory) in enumerate(saved):
        margin_pass, report = check(seed)
        path = save_margin_file(directory, epoch, step, margin_pass, report)
        assert path == directory / margin_file_name(epoch, step) and path.is_file()
        checks[(epoch, step)] = (margin_pass, report)

    loaded = load_margin_files(log_dir)
    assert [(c["epoch"], c["global_step"]) for c in loaded] == [(-1, 0), (0, 0), (0, 13), (1, 26), (2, 39)]
    for content in loaded:
        margin_pass, report = checks[(content["epoch"], content["global_step"])]
        for key in ("indices", "targets", "margins", "losses"):
            expected = getattr(margin_pass, key)
            assert content[key].dtype == expected.dtype and torch.equal(content[key], expected), key
        assert content["num_classes"] == NUM_CLASSES
        assert same_numbers(content["report"], report.to_dict())
    # the files and nothing else: no temporary file left behind
    assert sorted(p.name for p in (log_dir / "margins").iterdir()) == sorted(
        margin_file_name(epoch, step) for epoch, step, directory in saved if directory == log_dir / "margins"
    )
    assert [p.name for p in (log_dir / "resumed" / "margins").iterdir()] == [margin_file_name(2, 39)]


def test_an_interrupted_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:
    first, first_report = check(0)
    save_margin_file(tmp_path, 3, 40, first, first_report)
    second, second_report = check(1)
    assert not torch.equal(first.margins, second.margins)

    def interrupted(content, file) -> None:
        file.write(b"half a file")
        raise OSError("no space left on device")

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(OSError, match="no space left"):
        save_margin_file(tmp_path, 3, 40, second, second_report)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [margin_file_name(3, 40)]
    (content,) = load_margin_files(tmp_path)
    assert torch.equal(content["margins"], first.margins)


def test_no_margin_files_name_the_fix(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no margin files .*StabilityMonitor\(save_margins=True\)") as error:
        load_margin_files(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(error.value)


def test_data_check_files_round_trip(tmp_path: Path) -> None:
    x, _ = make_data(300)
    x[:8] = 9.0 + 0.01 * torch.randn(8, x.shape[1], generator=torch.Generator().manual_seed(0))  # a small cluster
    report = theory.data_clusters(x, n_random=8, n_principal=2, min_cluster_mass=0.01)
    assert report.witness is not None  # a file with every field filled
    table = data_check_table(report)

    data, text = save_data_check(tmp_path, report, table)
    assert (data, text) == (tmp_path / DATA_CHECK_FILE, tmp_path / DATA_CHECK_TABLE)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DATA_CHECK_FILE, DATA_CHECK_TABLE])
    assert text.read_text() == table + "\n"

    for source in (tmp_path, data):  # the directory or the file
        content = load_data_check(source)
        assert same_numbers(content["summary"], report.to_dict())
        for key in ("witness_indices", "worst_direction", "directions", "lower", "upper"):
            expected = getattr(report, key)
            assert content[key].dtype == expected.dtype and torch.equal(content[key], expected), key
        assert content["witness"] == report.witness
        assert content["worst_direction_kind"] == report.worst_direction_kind
        assert content["kinds"] == list(report.kinds)


def test_no_data_check_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no data-check file .*StabilityMonitor\(check_data=True\)"):
        load_data_check(tmp_path)
    with pytest.raises(FileNotFoundError, match=DATA_CHECK_FILE):
        load_data_check(tmp_path / DATA_CHECK_FILE)


# A margin file holds results, never the data: the 5,000-sample run below, of 784 float32 features, holds
# 15.7 MB of inputs; its margin files may hold at most BYTES_PER_SAMPLE per sample plus FILE_ALLOWANCE for the
# report dict, the blame cells (at most blame_size samples per set, each with its "why") and torch.save's zip framing.
BYTES_PER_SAMPLE = 150
FILE_ALLOWANCE = 16 * 1024
N_BIG = 5000  # groups 0, 1, 2 of 2,000, 2,000 and 1,000 samples: test_stability_instability's proportions


class BigScript(pl.Callback):
    def _set(self, module: pl.LightningModule, check: int) -> None:
        with torch.no_grad():
            module.linear.weight.zero_()
            module.linear.weight[:, :3] = weight_for(check)

    def on_train_start(self, trainer, pl_module) -> None:
        self._set(pl_module, -1)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._set(pl_module, trainer.current_epoch)


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> tuple[torch.Tensor, torch.Tensor, list[Path]]:
    """The scripted unstable run on 5,000 samples of 784 float32 features: events at epochs 1, 3 and 4."""
    # interleaved (0, 0, 1, 1, 2, ...): a first batch of group 0 alone, logits (1, 0, 0), would look like probabilities
    groups = torch.tensor([0, 0, 1, 1, 2]).repeat(N_BIG // 5)
    features = torch.rand(len(groups), 784, generator=torch.Generator().manual_seed(0))
    features[:, :3] = nn.functional.one_hot(groups, 3).float()
    directory = tmp_path_factory.mktemp("big") / "margins"
    monitor = StabilityMonitor(grid=SMALL_GRID, save_margins=directory, blame_size=16, tol=0.0)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=len(SCRIPT) - 1,
        callbacks=[BigScript(), monitor],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.warns(UserWarning, match="StabilityMonitor: instability at epoch"):
        trainer.fit(ScriptedClassifier(784), DataLoader(TensorDataset(features, groups), batch_size=1000))
    return features, groups, sorted(directory.glob("margins_epoch=*.pt"))


def test_margin_files_hold_no_copy_of_the_dataset(big_run) -> None:
    features, groups, paths = big_run
    assert len(paths) == len(SCRIPT)
    n = len(groups)
    for path in paths:
        size = path.stat().st_size
        print(f"{path.name}: {size} bytes, {size / n:.1f} bytes a sample")
        assert size <= BYTES_PER_SAMPLE * n + FILE_ALLOWANCE, path.name


def tensors_in(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors_in(item)]
    if isinstance(value, list | tuple):
        return [t for item in value for t in tensors_in(item)]
    return []


def test_margin_files_hold_the_blamed_samples_results_recomputed(big_run) -> None:
    features, groups, paths = big_run
    previous_correct = None
    for path in sorted(paths, key=lambda p: torch.load(p, weights_only=True)["global_step"]):
        content = torch.load(path, map_location="cpu", weights_only=True)
        # no picture, nothing as large as the dataset, no tensor sharing a larger storage
        for tensor in tensors_in(content):
            assert tensor.numel() < features.numel() and tensor.numel() <= len(groups)
            assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
        weight = torch.zeros(3, 784)
        weight[:, :3] = weight_for(content["epoch"])
        logits = features @ weight.T
        margins, predicted = theory.margins(logits, groups), logits.argmax(dim=1)
        assert torch.allclose(content["margins"], margins.double(), rtol=0, atol=1e-6)
        correct = margins > 0
        worst = sorted(range(len(groups)), key=lambda k: (float(content["margins"][k]), k))[:16]
        assert content["blame"]["worst"].tolist() == worst
        if previous_correct is not None:
            forgotten = torch.nonzero(previous_correct & ~correct).flatten()
            assert content["blame"]["forgotten"].tolist() == forgotten.tolist()
        previous_correct = correct
        cells = content["blame_cells"]
        assert list(cells) == list(BLAME_SETS)
        for key, title in BLAME_SETS.items():
            members = content["blame"][key]
            index = cells[key]["index"]
            assert index.tolist() == members[:16].tolist()
            assert cells[key]["why"] == title and cells[key]["total"] == members.numel()
            assert cells[key]["target"].tolist() == groups[index].tolist()
            assert cells[key]["predicted"].tolist() == predicted[index].tolist()
            assert cells[key]["margin"].dtype == torch.float64
            assert torch.equal(cells[key]["margin"], content["margins"][index])
            assert "pictures" not in cells[key]
    assert any(torch.load(p, weights_only=True)["blame"]["forgotten"].numel() > 16 for p in paths)  # cut sets too


def test_a_view_into_a_larger_storage_is_written_as_its_own_values(tmp_path: Path) -> None:
    """torch.save writes a tensor's whole storage: a row (or a strided column) of a big tensor passed in ``extra``
    would write all of it; the file holds the view's values only."""
    big = torch.rand(5000, 784)
    margin_pass, report = check(0)
    extra = {"row": big[7], "nested": {"column": [big[:, 3]]}, "pair": (big[0, :2], 1)}
    path = save_margin_file(tmp_path, 0, 1, margin_pass, report, extra)
    assert path.stat().st_size < 64 * 1024  # the storage alone is 15.7 MB
    (content,) = load_margin_files(tmp_path)
    assert torch.equal(content["row"], big[7]) and torch.equal(content["nested"]["column"][0], big[:, 3])
    assert torch.equal(content["pair"][0], big[0, :2]) and content["pair"][1] == 1


def test_the_offline_report_tables_the_blamed_samples_of_the_run(big_run, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    from lightning_stability.figures import sample_report

    _, _, paths = big_run
    drawn = []
    table = sample_report.blame_table_figure
    monkeypatch.setattr(sample_report, "blame_table_figure", lambda *args: drawn.append(args) or table(*args))
    written = sample_report.make_sample_report(paths[0].parent, tmp_path / "report.png")
    assert written[-1] == tmp_path / "report_blame.png" and written[-1].is_file()
    ((rows, notes, title),) = drawn
    assert title == "epoch 4: samples to blame"  # the last of the events at epochs 1, 3 and 4
    content = next(torch.load(p, weights_only=True) for p in paths if "epoch=0004" in p.name)
    margins = {int(i): float(m) for i, m in zip(content["indices"], content["margins"])}
    expected = [  # causes first (records.CAUSES_FIRST), each set cut to its 16 smallest margins
        (i, BLAME_SETS[key])
        for key in CAUSES_FIRST
        for i in sorted(content["blame"][key].tolist(), key=lambda i: (margins[i], i))[:16]  # the file's cut
    ]
    assert [(row.index, row.why) for row in rows] == expected
    assert all(row.margin == margins[row.index] for row in rows)
    cut = [
        f"{BLAME_SETS[key]}: 16 of {n:,} shown: the 16 smallest margins"
        for key in CAUSES_FIRST
        if (n := content["blame"][key].numel()) > 16
    ]
    assert notes == cut and cut
