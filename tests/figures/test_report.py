"""lightning_stability.figures.report: the report figure (legends, instability markers, a margin panel the check
before training does not squash, one panel per training-dynamics scalar found in the event files), on a short
real run and on margin files written by hand."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter

from lightning_stability import SharpnessMonitor, StabilityMonitor, theory
from lightning_stability.check_events import EVENT_LABEL, instability_events
from lightning_stability.figures.report import STOPPED_TAG, make_report, report_figure, stop_note
from lightning_stability.files import load_margin_files, save_margin_file
from lightning_stability.records import MarginPass

from ..helpers import SMALL_GRID, fit
from .helpers import NUM_CLASSES, N, legend_texts, margins_with_accuracy

pytest.importorskip("matplotlib")

# ---------------------------------------------------------------------------------------------------- helpers


def panels(figure) -> list:
    """The figure's panels (every axes but colour bars)."""
    return [axes for axes in figure.axes if axes.get_label() != "<colorbar>"]


def panel(figure, title_part: str):
    (found,) = [axes for axes in panels(figure) if title_part in axes.get_title()]
    return found


def event_markers(figure):
    (line,) = [line for axes in panels(figure) for line in axes.get_lines() if line.get_gid() == "instability_events"]
    return line


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def write_check(directory: Path, epoch: int, step: int, margins: torch.Tensor, loss: float) -> None:
    targets = torch.arange(N) % NUM_CLASSES
    losses = torch.full((N,), loss, dtype=torch.float64)
    predicted = torch.where(margins > 0, targets, (targets + 1) % NUM_CLASSES)
    margin_pass = MarginPass(torch.arange(N), targets, margins, losses, predicted, 3)
    report = theory.certify(margins, NUM_CLASSES, loss=loss, **SMALL_GRID)
    save_margin_file(directory, epoch, step, margin_pass, report)


# (epoch, global step, accuracy, loss): check 2 (epoch 1) lowers the loss *and* the accuracy, an instability event;
# check 4 (epoch 3) lowers the accuracy while the loss rises, which is not one
HAND_CHECKS = [(0, 10, 0.90, 0.50), (1, 20, 0.80, 0.40), (2, 30, 0.95, 0.30), (3, 40, 0.90, 0.35)]
TRAINED_RANGE = (-1.0, 5.0)


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory) -> Path:
    """Margin files written by hand: a check before training whose margins are a spike at 0 (much denser than any
    later check) plus outliers at ±100, then four trained checks with margins in [-1, 5] and one event."""
    run = tmp_path_factory.mktemp("hand") / "version_0"
    generator = torch.Generator().manual_seed(0)
    spike = 0.01 * torch.randn(N - 20, generator=generator, dtype=torch.float64)
    start = torch.cat(
        [spike, torch.full((10,), -100.0, dtype=torch.float64), torch.full((10,), 100.0, dtype=torch.float64)]
    )
    write_check(run / "margins", -1, 0, start, 1.2)
    for seed, (epoch, step, accuracy, loss) in enumerate(HAND_CHECKS, start=1):
        write_check(run / "margins", epoch, step, margins_with_accuracy(accuracy, seed, *TRAINED_RANGE), loss)
    return run


def write_dynamics_events(directory: Path, tags: list[str], check_tag: str = "stability/check_epoch") -> None:
    """TensorBoard scalars as the monitors log them: the checks at steps 0, 10, 20, 30, 40 (``check_tag``), the
    epoch-end monitors at the trained checks' steps, the gradient flow every 5 steps."""
    check_steps = {-1: 0, 0: 10, 1: 20, 2: 30, 3: 40}  # not the margin files' steps − 1: the events' anchors win
    with SummaryWriter(str(directory)) as writer:
        for epoch, step in check_steps.items():
            writer.add_scalar(check_tag, epoch, step)
            if epoch >= 0:
                for tag in tags:
                    if tag != "stability/gradient_flow/first_last_ratio":
                        writer.add_scalar(tag, 0.1 * (epoch + 1), step)
        if "stability/gradient_flow/first_last_ratio" in tags:
            for step in range(0, 40, 5):
                writer.add_scalar("stability/gradient_flow/first_last_ratio", 1.0 + step / 10, step)
        writer.add_scalar("train_loss", 1.0, 5)


# ---------------------------------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """Three epochs of a tiny MLP with the StabilityMonitor (margins saved) and the SharpnessMonitor, logged to
    TensorBoard; returns the run's log directory."""
    root = tmp_path_factory.mktemp("real")
    pl.seed_everything(0)
    callbacks = [
        StabilityMonitor(save_margins=True, grid=SMALL_GRID, log_histogram=False),
        SharpnessMonitor(num_samples=64),
    ]
    trainer = fit(callbacks, data=N, max_epochs=3, logger=TensorBoardLogger(root, name="run", version=0))
    return Path(trainer.log_dir)


def test_report_of_a_real_run(real_run: Path, tmp_path: Path) -> None:
    checks = load_margin_files(real_run)
    assert [check["epoch"] for check in checks] == [-1, 0, 1, 2]
    figure = report_figure(checks, real_run)

    # the three panels of the margin files, and one for the SharpnessMonitor's scalar found in the event files
    assert len(panels(figure)) == 4
    floors = panel(figure, "accuracy and its certified floors")
    assert legend_texts(floors)[:4] == [
        "training accuracy",
        "loss floor (Theorem 0)",
        "Theorem A floor",
        "Theorem B floor",
    ]
    assert any(EVENT_LABEL in text for text in legend_texts(floors))
    accuracy = floors.get_lines()[0]
    assert list(accuracy.get_xdata()) == [-1, 0, 1, 2]
    assert list(accuracy.get_ydata()) == [check["report"]["accuracy"] for check in checks]
    assert legend_texts(panel(figure, "condition constants"))
    margins = panel(figure, "margin distribution")
    assert any(text.startswith("before training") for text in legend_texts(margins))
    assert "last check (epoch 2)" in legend_texts(margins)
    (colorbar,) = [axes for axes in figure.axes if axes.get_label() == "<colorbar>"]
    assert colorbar.get_ylabel() == "epoch of the check"

    # the sharpness panel: the logged values, at the epochs of the checks
    from tests.helpers import tensorboard_events

    logged = [event.value for event in tensorboard_events(real_run).Scalars("stability/sharpness/edge_ratio")]
    sharpness = panel(figure, "SharpnessMonitor")
    (series, reference) = sharpness.get_lines()[:2]
    assert list(series.get_xdata()) == [0.0, 1.0, 2.0]
    assert np.allclose(series.get_ydata(), logged)
    assert reference.get_ydata()[0] == 1.0 and "edge_ratio: λ_max(P^-½ H P^-½) / T" in legend_texts(sharpness)

    # without the event files: the three panels only
    assert len(panels(report_figure(checks))) == 3

    # make_report saves that figure; pointed at the monitor's margins folder it still finds the run's event files
    one, two = make_report(real_run, tmp_path / "a.png"), make_report(real_run / "margins", tmp_path / "b.png")
    assert one.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_size(one) == png_size(two) == (1800, 1040)  # two rows of panels


# ---------------------------------------------------------------------------------------------------- hand-written


def test_instability_event_is_marked_at_its_epoch(hand_run: Path) -> None:
    checks = load_margin_files(hand_run)
    assert instability_events(checks) == ([2], True)  # recomputed: the margin files do not store tol
    figure = report_figure(checks)
    markers = event_markers(figure)
    assert list(markers.get_xdata()) == [1]
    assert list(markers.get_ydata()) == [pytest.approx(0.80)]
    (label,) = [text for text in legend_texts(panel(figure, "accuracy")) if EVENT_LABEL in text]
    assert label == f"instability event:\n{EVENT_LABEL}\n(recomputed with tol 0)"
    assert "1 instability event (epoch 1), tol 0" in figure.get_suptitle()
    # a dotted red line at the event in the other epoch panels
    constants = panel(figure, "condition constants")
    assert [list(line.get_xdata()) for line in constants.get_lines() if line.get_linestyle() == ":"] == [[1, 1]]


def test_the_monitor_s_instability_flags_win_over_recomputing(hand_run: Path) -> None:
    checks = load_margin_files(hand_run)
    for check in checks[1:]:  # e.g. a monitor with tol = 0.2: no event
        check["report"]["instability"] = 0.0
    assert instability_events(checks) == ([], False)
    figure = report_figure(checks)
    assert len(event_markers(figure).get_xdata()) == 0
    texts = legend_texts(panel(figure, "accuracy"))
    assert f"instability events: none\n({EVENT_LABEL})" in texts


def test_pre_training_check_does_not_squash_the_margin_panel(hand_run: Path) -> None:
    checks = load_margin_files(hand_run)
    figure = report_figure(checks)
    margins = panel(figure, "margin distribution")
    low, high = margins.get_xlim()
    trained = torch.cat([check["margins"] for check in checks[1:]]).numpy()
    # the x-range is the trained checks' (0.5–99.5 % quantiles and 0, padded), not the start check's ±100
    assert TRAINED_RANGE[0] - 1 < low <= np.quantile(trained, 0.005)
    assert np.quantile(trained, 0.995) <= high < TRAINED_RANGE[1] + 1
    # the y-range is the trained checks' densities; the start check's spike is clipped and the legend says so
    start_curve, *trained_curves = [line for line in margins.get_lines() if "margin_density" in str(line.get_gid())]
    assert start_curve.get_gid() == "margin_density_start" and start_curve.get_linestyle() == "--"
    assert len(trained_curves) == len(HAND_CHECKS)
    top = margins.get_ylim()[1]
    assert max(float(np.max(curve.get_ydata())) for curve in trained_curves) <= top < np.max(start_curve.get_ydata())
    (start,) = [text for text in legend_texts(margins) if text.startswith("before training")]
    assert "off scale" in start
    # one colour per trained check from the colour bar, no per-check legend entries
    assert len(legend_texts(margins)) == 3


@pytest.mark.parametrize(
    ("tags", "titles", "check_tag"),
    [
        (
            [
                "stability/sharpness/edge_ratio",
                "stability/parametrization/layer0/dead_fraction",
                "stability/parametrization/layer1/dead_fraction",
                "stability/gradient_flow/first_last_ratio",
            ],
            ["SharpnessMonitor", "ParametrizationMonitor", "GradientFlowMonitor"],
            "stability/check_epoch",
        ),
        (["stability/parametrization/layer1/dead_fraction"], ["ParametrizationMonitor"], "stability/check_epoch"),
        (["stability/gradient_flow/first_last_ratio"], ["GradientFlowMonitor"], "stability_diagnostics/check_epoch"),
        ([], [], "stability/check_epoch"),
    ],
    ids=["all-three", "parametrization-only", "gradient-flow-diagnostics-name", "none"],
)
def test_one_panel_per_dynamics_scalar_found(hand_run: Path, tmp_path: Path, tags, titles, check_tag) -> None:
    write_dynamics_events(tmp_path / "tb" / "version_0", tags, check_tag)  # found recursively
    figure = report_figure(load_margin_files(hand_run), tmp_path)
    assert len(panels(figure)) == 3 + len(titles)
    for title in titles:
        assert legend_texts(panel(figure, title))
    if "GradientFlowMonitor" in titles:
        flow = panel(figure, "GradientFlowMonitor").get_lines()[0]
        # steps between two checks sit between their epochs: step 0 before training, 5 → −0.5, 10 → 0, 15 → 0.5
        assert list(flow.get_xdata()[:4]) == pytest.approx([-1.0, -0.5, 0.0, 0.5])
    if "ParametrizationMonitor" in titles:
        layers = legend_texts(panel(figure, "ParametrizationMonitor"))
        assert [text for text in layers if text.startswith("layer")] == [
            f"layer {tag.split('/')[2][len('layer') :]}" for tag in tags if "dead_fraction" in tag
        ]


def test_no_event_files_no_dynamics_panels(hand_run: Path, tmp_path: Path) -> None:
    checks = load_margin_files(hand_run)
    assert len(panels(report_figure(checks, tmp_path / "does-not-exist"))) == 3
    assert len(panels(report_figure(checks, tmp_path))) == 3


# ---------------------------------------------------------------------------------------------------- legibility


def drawn(figure):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    figure.draw_without_rendering()
    return figure


def test_legends_are_outside_the_data_and_axes_say_what_they_show(hand_run: Path) -> None:
    figure = drawn(report_figure(load_margin_files(hand_run)))
    for title in ("accuracy", "condition constants", "margin distribution"):
        axes = panel(figure, title)
        legend, box = axes.get_legend().get_window_extent(), axes.get_window_extent()
        assert legend.y1 < box.y0, title  # under the panel: it covers no peak, no point and not δ = 0
    margins = panel(figure, "margin distribution")
    assert margins.get_ylabel().startswith("fraction of the samples per unit of δ")
    constants = panel(figure, "condition constants")
    assert constants.get_ylabel() == "constant (log scale)"
    texts = legend_texts(constants)
    assert texts[0].startswith("C_A: Condition A's least constant") and "Theorem A" in texts[0]
    assert texts[1].startswith("κ_lo: certified lower bound of Condition B's constant κ_B")
    assert texts[2].startswith("κ_hi: upper bound of κ_B") and texts[3].startswith("1: κ_B = 1")


def test_floors_of_one_value_all_show(hand_run: Path) -> None:
    """All three floors are 0 at the check before training: each smaller marker is drawn over the larger."""
    figure = report_figure(load_margin_files(hand_run))
    floors = panel(figure, "accuracy")
    lines = {line.get_label(): line for line in floors.get_lines()}
    a, b, loss = lines["Theorem A floor"], lines["Theorem B floor"], lines["loss floor (Theorem 0)"]
    assert list(a.get_ydata())[0] == list(b.get_ydata())[0] == list(loss.get_ydata())[0] == 0.0
    assert b.get_zorder() < loss.get_zorder() < a.get_zorder() < lines["training accuracy"].get_zorder()
    assert b.get_markersize() > loss.get_markersize() > a.get_markersize()
    assert a.get_linestyle() != b.get_linestyle() and a.get_marker() != b.get_marker()


def test_the_title_says_the_stop_where_the_run_records_it(hand_run: Path, tmp_path: Path) -> None:
    checks = load_margin_files(hand_run)
    assert "stopped" not in report_figure(checks).get_suptitle()
    # the margin file of the check that stopped training holds the monitor's sentence
    sentence = "Training stopped at epoch 3: instability (1 consecutive event, patience 1)."
    stopped = [*checks[:-1], {**checks[-1], "stopping": sentence}]
    assert report_figure(stopped).get_suptitle().split("\n")[-1] == sentence
    assert stop_note(stopped, {}) == sentence
    # without it, the event files' final value records that the monitor stopped, not when
    for value, said in ((1.0, True), (0.0, False)):
        directory = tmp_path / f"stopped_{value}" / "version_0"
        with SummaryWriter(str(directory)) as writer:
            writer.add_scalar(STOPPED_TAG, value, 40)
        title = report_figure(checks, directory.parent).get_suptitle()
        assert ("Training stopped by the StabilityMonitor" in title) is said
        assert ("at which check" in title) is said
