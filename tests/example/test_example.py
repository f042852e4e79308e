"""The example: training runs of its configs, MNIST sources, the AbsMLP, the report and check-data commands (the
configs' parsing is in test_configs.py)."""

from __future__ import annotations

import gzip
import io
import math
import re
from fractions import Fraction

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import lightning_stability.cli as cli_module
import lightning_stability.theory
from lightning_stability import StabilityMonitor
from lightning_stability.cli import _lightning_cli, main
from lightning_stability.example import AbsMLP, MNISTDataModule, read_idx, write_idx
from lightning_stability.figures.report import make_report

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


def capture_cli(monkeypatch) -> list:
    """Make `main` record the LightningCLI it builds (it looks ``_lightning_cli`` up at call time)."""
    original, made = cli_module._lightning_cli, []

    def recording(distribution: str = "pytorch_lightning"):
        class Recording(original(distribution)):
            def __init__(self, *args, **kwargs):
                made.append(self)
                super().__init__(*args, **kwargs)

        return Recording

    monkeypatch.setattr(cli_module, "_lightning_cli", recording)
    return made


def test_instability_demo_stops_and_says_why(in_tmp_path, capsys, monkeypatch):
    """The demo stops at its first instability event (patience 1) and prints the monitor's reason; the event is
    recomputed from the saved margin files with the rule of docs/theory.md §8."""
    config = CONFIGS_DIR / "instability_demo.yaml"
    made = capture_cli(monkeypatch)
    with pytest.warns(UserWarning, match="StabilityMonitor: instability at epoch"):
        main(["fit", "--config", str(config)])
    out = capsys.readouterr().out
    (cli,) = made
    trainer = cli.trainer
    (monitor,) = [c for c in trainer.callbacks if isinstance(c, StabilityMonitor)]
    settings = yaml.safe_load(config.read_text())["trainer"]["callbacks"][0]["init_args"]
    tol, max_epochs = settings["tol"], yaml.safe_load(config.read_text())["trainer"]["max_epochs"]

    stop_epoch = monitor.last_checked_epoch
    assert trainer.should_stop and stop_epoch < max_epochs - 1, "stopped before max_epochs"
    assert monitor.stop_reason.startswith(f"instability at epoch {stop_epoch}: the training loss fell (")
    assert f"[lightning-stability] stopped: {monitor.stop_reason}\n" in out
    assert monitor.instability_count == monitor.consecutive_instabilities == 1

    # one margin file per check: the start check and every epoch up to the stop
    directory = in_tmp_path / "stability_logs" / "instability_demo" / "version_0" / "margins"
    assert monitor.margins_dir(trainer).resolve() == directory
    files = sorted(directory.glob("margins_epoch=*.pt"))
    assert len(files) == monitor.checks_done == stop_epoch + 2
    checks = sorted((torch.load(f, weights_only=True) for f in files), key=lambda c: c["global_step"])
    assert [c["epoch"] for c in checks] == list(range(-1, stop_epoch + 1))

    # §8 on the saved margins and losses: no event before the last check, an event at it, and the reason's numbers
    def loss_and_accuracy(check) -> tuple[float, float]:
        n = check["margins"].numel()
        return math.fsum(check["losses"].tolist()) / n, float(Fraction(int((check["margins"] > 0).sum()), n))

    values = [loss_and_accuracy(c) for c in checks]
    events = [b[0] < a[0] and b[1] < a[1] - tol for a, b in zip(values, values[1:])]
    assert events == [False] * (len(events) - 1) + [True]
    (before_loss, before_accuracy), (loss, accuracy) = values[-2:]
    assert monitor.stop_reason.startswith(
        f"instability at epoch {stop_epoch}: the training loss fell ({before_loss:.6g} -> {loss:.6g}) while the "
        f"training accuracy fell ({before_accuracy:.6g} -> {accuracy:.6g}, tol {tol:g})"
    )
    assert checks[-1]["report"]["accuracy"] == pytest.approx(accuracy, rel=1e-12)

    # which samples (docs/samples.md): the forgotten ones by hand, their grid in TensorBoard at the event's step
    previous, last = checks[-2]["margins"], checks[-1]["margins"]
    forgotten = [k for k in range(last.numel()) if previous[k] > 0 >= last[k]]
    assert forgotten and checks[-1]["blame"]["forgotten"].tolist() == forgotten
    events_file = EventAccumulator(str(directory.parent), size_guidance={"images": 0})
    events_file.Reload()
    (grid,) = events_file.Images("stability/blame")
    assert grid.step == checks[-1]["global_step"]  # the margin file carries the step the loggers got
    assert Image.open(io.BytesIO(grid.encoded_image_string)).size == (grid.width, grid.height)
    rows = (directory.parent / "samples.csv").read_text().splitlines()
    assert len(rows) == 1 + last.numel() and rows[0].startswith("index,target,last_margin,aum,")
    for picture in ("report_data_map.png", "report_blame.png"):
        assert f"[lightning-stability] samples: stability_logs/instability_demo/version_0/{picture}" in out


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


def capture_data_clusters(monkeypatch) -> list:
    """Make ``theory.data_clusters`` record ``(inputs, settings, report)`` of every call (the command looks it up at
    call time); the report is the one whose table the command prints."""
    original, calls = lightning_stability.theory.data_clusters, []

    def recording(inputs, *args, **kwargs):
        report = original(inputs, *args, **kwargs)
        calls.append((inputs, kwargs, report))
        return report

    monkeypatch.setattr(lightning_stability.theory, "data_clusters", recording)
    return calls


ROW = re.compile(r"^(random|principal|extra|all) +(\S+) +(\S+)(?: +(\d+))?$")
HEADER = re.compile(r"^samples N = (\d+), directions = (\d+) \((.*)\)$")
SETTINGS = re.compile(r"^settings: dilation Λ = (\S+), max mass m = (\S+), min cluster mass m_min = (\S+)$")
WORST = re.compile(r"^worst direction: (\w+); slab \|<u, x> - (\S+)\| <= (\S+): (.*)$")
INSIDE = re.compile(r"^samples inside: \[([\d, ]*)\](?: … \((\d+) samples\))?$")


def parse_table(out: str) -> dict:
    """The numbers the check-data command printed."""
    lines = out.splitlines()
    table: dict = {"rows": {}}
    for line in lines:
        if match := HEADER.match(line):
            counts = {kind: int(n) for n, kind in (part.split(" ") for part in match.group(3).split(", "))}
            table.update(num_samples=int(match.group(1)), num_directions=int(match.group(2)), counts=counts)
        elif match := SETTINGS.match(line):
            table["settings"] = tuple(float(v) for v in match.groups())
        elif match := ROW.match(line):
            kind, lower, upper, violations = match.groups()
            table["rows"][kind] = (float(lower), float(upper), None if violations is None else int(violations))
        elif match := WORST.match(line):
            table.update(worst_kind=match.group(1), centre=float(match.group(2)), radius=float(match.group(3)))
            table["verdict"] = match.group(4)
        elif match := INSIDE.match(line):
            table["shown"] = [int(v) for v in match.group(1).split(", ") if v]
            table["inside"] = int(match.group(2)) if match.group(2) else len(table["shown"])
    return table


def check_table(out: str, calls: list, requested: dict[str, int], num_samples: int) -> tuple[dict, object]:
    """The printed table is consistent with itself, with the request and with the inputs (docs/theory.md §9): the
    directions by kind are the requested numbers, ``κ_lo ≤ κ_hi`` on every row, the "all" row is the least of the
    others, a direction is a violation iff its ``κ_hi ≤ 1``, the verdict says "isolated cluster" iff ``κ_hi ≤ 1``,
    and the printed witness slab, recounted on the inputs, holds exactly the printed samples, is admissible and has
    the printed ``κ_hi`` as its ratio ``μ(ΛP)/μ(P)``."""
    assert len(calls) == 1
    inputs, _, report = calls[0]
    table = parse_table(out)
    assert table["num_samples"] == num_samples == inputs.shape[0]
    assert table["counts"] == {kind: n for kind, n in requested.items() if n}
    assert table["num_directions"] == sum(requested.values())
    dilation, max_mass, min_cluster_mass = table["settings"]
    assert (dilation, max_mass) == (2.0, 0.05)  # the defaults
    assert min_cluster_mass == pytest.approx(max(10 / num_samples, 0.005), rel=1e-3)  # the default m_min (§9)

    rows = table["rows"]
    assert set(rows) == set(table["counts"]) | {"all"}
    for kind, (lower, upper, violations) in rows.items():
        assert lower <= upper, kind
        if kind != "all":
            assert 0 <= violations <= table["counts"][kind]
            assert (violations > 0) == (upper <= 1.0), kind
    assert rows["all"][:2] == (min(r[0] for r in rows.values()), min(r[1] for r in rows.values()))
    all_upper = rows["all"][1]
    assert ("an isolated cluster" in table["verdict"]) == (all_upper <= 1.0)
    assert rows[table["worst_kind"]][1] == all_upper

    # the witness, recounted on the inputs along the worst direction (the report's unit vector)
    u = report.worst_direction.numpy()
    assert abs(np.linalg.norm(u) - 1) < 1e-12
    kinds = [k for d, k in zip(report.directions.numpy(), report.kinds) if np.array_equal(d, u)]
    assert table["worst_kind"] in kinds
    projections = inputs.reshape(num_samples, -1).double().numpy() @ u
    centre, radius = report.witness
    assert f"{centre:.4g}" == f"{table['centre']:.4g}" and f"{radius:.4g}" == f"{table['radius']:.4g}"
    inside = np.flatnonzero(np.abs(projections - centre) <= radius)
    dilated = np.flatnonzero(np.abs(projections - centre) <= dilation * radius)
    assert table["inside"] == len(inside) and table["shown"] == inside[:20].tolist()
    slack = 5e-4 * max(abs(table["centre"]), table["radius"])  # 4 significant digits printed
    assert np.all(np.abs(projections[table["shown"]] - table["centre"]) <= table["radius"] + slack)
    low, high = np.quantile(projections, [0.05, 0.95])
    assert 2 * radius >= 0.1 * (high - low) * (1 - 1e-12)  # resolution h
    assert min_cluster_mass * (1 - 1e-3) <= len(inside) / num_samples and len(dilated) / num_samples <= max_mass
    assert round(len(dilated) / len(inside), 4) == all_upper
    return table, report


def test_check_data_command_prints_a_table_and_writes_the_witness_png(tmp_path, capsys, monkeypatch):
    calls = capture_data_clusters(monkeypatch)
    output = tmp_path / "witness.png"
    assert main(["check-data", "--source", "embedded", "--directions", "4", "--principal", "2", "-o", str(output)]) == 0
    out = capsys.readouterr().out
    expected = MNISTDataModule(source="embedded")
    expected.setup("fit")
    images = expected.train_set.tensors[0]
    _, report = check_table(out, calls, {"random": 4, "principal": 2}, len(images))
    assert torch.equal(calls[0][0], images), "the training inputs"
    # the two principal directions are the top eigenvectors of the inputs' covariance (up to sign)
    _, vectors = np.linalg.eigh(np.cov(images.reshape(len(images), -1).double().numpy(), rowvar=False, bias=True))
    for direction, vector in zip(report.directions[4:].numpy(), vectors[:, ::-1].T):
        assert abs(float(direction @ vector)) > 1 - 1e-9
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.usefixtures("in_tmp_path")
def test_check_data_with_a_config_adds_the_first_layer_rows(tmp_path, capsys, monkeypatch):
    text = (CONFIGS_DIR / "mnist_abs_mlp.yaml").read_text().replace("hidden_dims: [256, 256]", "hidden_dims: [8]")
    (tmp_path / "small.yaml").write_text(text)
    calls = capture_data_clusters(monkeypatch)
    main(["check-data", "--config", "small.yaml", "--directions", "2", "--principal", "0", "-o", "w.png"])
    out = capsys.readouterr().out
    _, report = check_table(out, calls, {"random": 2, "principal": 0, "extra": 8}, 4500)
    # the extra directions are the (normalised) rows of the first layer of the model the config builds
    first = _lightning_cli()(args=["--config", "small.yaml"], run=False).model.net[0].weight.detach().double()
    assert torch.allclose(report.directions[2:], first / first.norm(dim=1, keepdim=True), rtol=0, atol=1e-12)


def test_linear_classifier_sets_and_checks_its_initial_parameters() -> None:
    from lightning_stability.example import LinearClassifier

    model = LinearClassifier(input_dim=1, num_classes=2, initial_weight=[[-1.5], [1.5]], initial_bias=[0.25, 0.0])
    assert model.linear.weight.tolist() == [[-1.5], [1.5]] and model.linear.bias.tolist() == [0.25, 0.0]
    with pytest.raises(ValueError, match=r"`initial_weight` must have shape \(2, 1\), got \(1, 1\)"):
        LinearClassifier(input_dim=1, num_classes=2, initial_weight=[[1.0]])
    with pytest.raises(ValueError, match=r"`initial_bias` must have shape \(2,\), got \(3,\)"):
        LinearClassifier(input_dim=1, num_classes=2, initial_bias=[0.0, 0.0, 0.0])
