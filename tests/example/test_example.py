"""The example: training runs of its configs, MNIST sources, the AbsMLP, the report and check-data commands (the
configs' parsing is in test_configs.py)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from lightning_stability.cli import main
from lightning_stability.example import AbsMLP, MNISTDataModule, read_idx, write_idx
from lightning_stability.plots import make_report

from ..helpers import CONFIGS_DIR, tensorboard_events


def test_default_config_trains_and_logs_stability_metrics(in_tmp_path, capsys):
    main(
        [
            "fit",
            "--config",
            str(CONFIGS_DIR / "mnist_abs_mlp.yaml"),
            "--trainer.max_epochs=2",
            "--trainer.callbacks.init_args.log_figure=false",
        ]
    )
    out = capsys.readouterr().out
    assert "[lightning-stability] logs:" in out and "[lightning-stability] report:" in out
    run_dir = in_tmp_path / "stability_logs" / "mnist_abs_mlp" / "version_0"
    assert (run_dir / "report.png").stat().st_size > 10_000
    assert len(list((run_dir / "margins").glob("margins_epoch=*.pt"))) == 3  # start + 2 epochs
    events = tensorboard_events(run_dir)
    tags = events.Tags()["scalars"]
    for name in (
        "stability/accuracy",
        "stability/loss_floor",
        "stability/theorem_a/floor",
        "stability/theorem_b/floor",
    ):
        assert name in tags
    accuracy = [event.value for event in events.Scalars("stability/accuracy")]
    assert accuracy[-1] > 0.9  # two epochs of Adam on 4,500 digits
    assert "stability/margins" in events.Tags()["histograms"]


def test_instability_demo_stops_and_says_why(in_tmp_path, capsys):
    main(["fit", "--config", str(CONFIGS_DIR / "instability_demo.yaml")])
    out = capsys.readouterr().out
    assert "stopped: instability at epoch" in out
    assert "training loss fell" in out and "training accuracy fell" in out
    margin_files = list((in_tmp_path / "stability_logs" / "instability_demo" / "version_0" / "margins").glob("*.pt"))
    assert len(margin_files) < 30  # stopped before max_epochs (30 epochs + the start check)


def test_idx_reader_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(7,), dtype=np.uint8)
    write_idx(tmp_path / "a-idx3-ubyte", images)
    write_idx(tmp_path / "b-idx1-ubyte.gz", labels)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), images)
    assert np.array_equal(read_idx(tmp_path / "b-idx1-ubyte.gz"), labels)
    with gzip.open(tmp_path / "b-idx1-ubyte.gz", "rb") as handle:
        raw = handle.read()
    assert raw[:4] == bytes([0, 0, 8, 1]) and int.from_bytes(raw[4:8], "big") == 7


def test_idx_reader_rejects_garbage(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x56\x78hello")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((3, 2), dtype=np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="bytes follow"):
        read_idx(tmp_path / "short")


def test_idx_source_reads_the_four_files(tmp_path):
    rng = np.random.default_rng(1)
    for stem, count in (("train", 12), ("t10k", 5)):
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", rng.integers(0, 10, (count,), dtype=np.uint8))
    module = MNISTDataModule(source="idx", data_dir=str(tmp_path), batch_size=4)
    module.setup("fit")
    assert len(module.train_set) == 12 and len(module.val_set) == 5
    images, labels = module.train_set[0]
    assert images.shape == (1, 28, 28) and labels.dtype == torch.long


def test_missing_sources_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        MNISTDataModule(source="idx", data_dir=str(tmp_path)).setup("fit")
    with pytest.raises(ImportError, match="torchvision"):
        MNISTDataModule(source="torchvision", data_dir=str(tmp_path)).setup("fit")
    with pytest.raises(ValueError, match="source"):
        MNISTDataModule(source="kaggle")


def test_embedded_split_is_deterministic_and_balanced():
    first, second = MNISTDataModule(seed=3), MNISTDataModule(seed=3)
    first.setup("fit")
    second.setup("fit")
    assert torch.equal(first.train_set.tensors[1], second.train_set.tensors[1])
    assert len(first.train_set) == 4500 and len(first.val_set) == 500
    counts = torch.bincount(first.train_set.tensors[1], minlength=10)
    assert counts.min() > 400  # 500 per class before the 10 % split


def test_abs_mlp_uses_absolute_value_activations():
    model = AbsMLP(input_dim=4, hidden_dims=(3, 2), num_classes=2)
    activations = [type(layer).__name__ for layer in model.net]
    assert activations == ["Linear", "AbsoluteValue", "Linear", "AbsoluteValue", "Linear"]
    assert torch.all(model.net[1](torch.tensor([-2.0, 3.0])) == torch.tensor([2.0, 3.0]))
    with pytest.raises(ValueError, match="optimizer"):
        AbsMLP(optimizer="lbfgs")


@pytest.mark.usefixtures("in_tmp_path")
def test_report_command_writes_a_png(tmp_path):
    main(["fit", "--config", str(CONFIGS_DIR / "instability_demo.yaml"), "--trainer.max_epochs=3"])
    log_dir = tmp_path / "stability_logs" / "instability_demo" / "version_0"
    assert main(["report", str(log_dir), "-o", str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out.png").stat().st_size > 10_000
    with pytest.raises(FileNotFoundError, match="save_margins"):
        make_report(tmp_path / "nothing-here", tmp_path / "x.png")


def test_check_data_command_prints_a_table_and_writes_the_witness_png(tmp_path, capsys):
    output = tmp_path / "witness.png"
    assert main(["check-data", "--source", "embedded", "--directions", "4", "--principal", "2", "-o", str(output)]) == 0
    out = capsys.readouterr().out
    assert "samples N = 4500, directions = 6 (4 random, 2 principal)" in out
    assert "worst direction:" in out and "samples inside:" in out
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.usefixtures("in_tmp_path")
def test_check_data_with_a_config_adds_the_first_layer_rows(tmp_path, capsys):
    text = (CONFIGS_DIR / "mnist_abs_mlp.yaml").read_text().replace("hidden_dims: [256, 256]", "hidden_dims: [8]")
    (tmp_path / "small.yaml").write_text(text)
    main(["check-data", "--config", "small.yaml", "--directions", "2", "--principal", "0", "-o", "w.png"])
    assert "8 extra" in capsys.readouterr().out  # the model's first layer has 8 units
