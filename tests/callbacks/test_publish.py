"""CheckPublisher (callbacks/publish.py): what a check hands to the loggers and the margin file, and when; the
scalars, the constants and the cost in the same pass."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_stability import loggers
from lightning_stability.assess import InstabilityHistory
from lightning_stability.callbacks import blame_pictures
from lightning_stability.callbacks import publish as publish_module
from lightning_stability.callbacks.blame_pictures import BlamePictures
from lightning_stability.callbacks.check_cost import CheckCost
from lightning_stability.callbacks.publish import CheckPublisher, Publication
from lightning_stability.figures.blame_grid import blame_layout
from lightning_stability.files import margin_file_name
from lightning_stability.records import BlameSets, MarginPass

MARGIN_PASS = MarginPass(
    torch.tensor([0, 1, 2]),
    torch.tensor([1, 0, 1]),
    torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64),
    torch.tensor([0.4, 1.3, 0.1], dtype=torch.float64),
    torch.tensor([1, 1, 1]),
    num_classes=2,
)
BLAME = BlameSets(torch.tensor([1]), torch.tensor([1, 0]), torch.tensor([], dtype=torch.long), torch.tensor([2]))


class Report:
    def to_dict(self) -> dict[str, float]:
        return {"accuracy": 2 / 3}


class Pictures:
    """Records the blame pictures asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def log_grid(self, trainer, dataset, blame, margin_pass, epoch, step):
        self.calls.append(("grid", epoch, step))
        return ["row"]

    def file_entries(self, trainer, dataset, blame, margin_pass, rows):
        self.calls.append(("file", rows))
        return {"blame": blame.as_dict()}


def result(exact: bool = True, event: bool = False, blame: BlameSets | None = None):
    return SimpleNamespace(
        exact=exact,
        margin_pass=MARGIN_PASS,
        report=Report(),
        mu=torch.full((3,), 1 / 3, dtype=torch.float64),
        epoch=4,
        blame=blame,
        comparison=SimpleNamespace(event=event),
    )


SUMMARY = {"text": ""}
SCALARS: list[tuple] = []


def publish(publisher: CheckPublisher, run, checked, summary: str, step: int, dataset, margins_dir, cost=None):
    """``publisher.publish`` of one `Publication` of ``checked`` whose summary text is ``summary``."""
    SUMMARY["text"] = summary
    publication = Publication(
        result=checked,
        metrics={"stability/accuracy": 0.5},
        history=InstabilityHistory(),
        step=step,
        in_epoch_end=False,
        constants=None,
        dataset=dataset,
        margins_dir=margins_dir,
        approximate=False,
        full_checks=False,
        scope="",
        clock=(0.0, 0.0, 0.0),
    )
    return publisher.publish(run, None, publication, cost or CheckCost(False))


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    calls: list[tuple] = []
    SCALARS.clear()
    monkeypatch.setattr(publish_module, "check_texts", lambda *args: (SUMMARY["text"], "the console line"))
    monkeypatch.setattr(
        publish_module, "log_check_scalars", lambda t, m, metrics, **kwargs: SCALARS.append((metrics, kwargs))
    )
    monkeypatch.setattr(publish_module, "log_text", lambda t, tag, text, step: calls.append(("text", tag, text, step)))
    monkeypatch.setattr(
        publish_module, "log_histogram", lambda t, tag, values, step: calls.append(("histogram", tag, values, step))
    )
    monkeypatch.setattr(
        publish_module, "log_figure", lambda t, tag, make, step: calls.append(("figure", tag, make, step))
    )
    return calls


def trainer(global_zero: bool = True) -> SimpleNamespace:
    return SimpleNamespace(is_global_zero=global_zero, global_step=17, world_size=1)


def test_subset_check_logs_only_the_summary(logged: list, tmp_path: Path) -> None:
    pictures = Pictures()
    checked = result(exact=False, event=True, blame=BLAME)
    publish(CheckPublisher(True, True, pictures), trainer(), checked, "s", 9, None, tmp_path)
    assert logged == [("text", "stability/summary", "s", 9)]
    assert pictures.calls == [] and list(tmp_path.iterdir()) == []


def test_exact_check_logs_summary_histogram_and_figure(logged: list) -> None:
    publish(CheckPublisher(True, True, Pictures()), trainer(), result(), "summary", 3, None, None)
    assert [call[:2] for call in logged] == [
        ("text", "stability/summary"),
        ("histogram", "stability/margins"),
        ("figure", "stability/envelopes"),
    ]
    assert logged[1][2].tolist() == [0.5, -1.0, 2.0] and logged[1][3] == 3
    assert callable(logged[2][2]) and logged[2][3] == 3  # drawn only by a logger that shows figures


def test_scalars_first_then_the_cost_after_everything(logged: list) -> None:
    """The check's scalars go out before anything else, at its step; its cost, measured after everything else,
    last, to the loggers only; the console line comes back."""
    cost, line = publish(
        CheckPublisher(True, False, Pictures()), trainer(), result(), "s", 3, None, None, CheckCost(True)
    )
    assert set(cost) == {
        "stability_cost/pass_seconds",
        "stability_cost/theory_seconds",
        "stability_cost/publish_seconds",
        "stability_cost/total_seconds",
    }
    assert line == "the console line"
    assert [metrics for metrics, _ in SCALARS] == [{"stability/accuracy": 0.5}, cost]
    assert SCALARS[0][1] == dict(step=3, epoch=4, in_epoch_end=False, logger_only=())
    assert SCALARS[1][1] == dict(step=3, epoch=4, in_epoch_end=False)
    assert cost["stability_cost/total_seconds"] >= cost["stability_cost/publish_seconds"] >= 0


@pytest.mark.parametrize(
    ("histogram", "figure", "kinds"), [(False, False, []), (True, False, ["histogram"]), (False, True, ["figure"])]
)
def test_histogram_and_figure_switches(logged: list, histogram: bool, figure: bool, kinds: list[str]) -> None:
    publish(CheckPublisher(histogram, figure, Pictures()), trainer(), result(), "x", 0, None, None)
    assert [call[0] for call in logged] == ["text", *kinds]


def test_blame_grid_only_at_an_event(logged: list) -> None:
    pictures = Pictures()
    publisher = CheckPublisher(False, False, pictures)
    publish(publisher, trainer(), result(event=False, blame=BLAME), "x", 5, None, None)
    assert pictures.calls == []
    publish(publisher, trainer(), result(event=True, blame=BLAME), "x", 6, None, None)
    assert pictures.calls == [("grid", 4, 6)]
    publish(publisher, trainer(), result(event=True, blame=None), "x", 7, None, None)
    assert pictures.calls == [("grid", 4, 6)]


def test_margin_file_written_with_the_blame(logged: list, tmp_path: Path) -> None:
    pictures = Pictures()
    publish(CheckPublisher(False, False, pictures), trainer(), result(event=True, blame=BLAME), "x", 6, None, tmp_path)
    assert pictures.calls == [("grid", 4, 6), ("file", ["row"])]  # the grid's rows reused
    path = tmp_path / margin_file_name(4, 6)  # the loggers' step of the check, not the trainer's global step (17)
    content = torch.load(path, weights_only=False)
    assert (content["epoch"], content["global_step"], content["num_classes"]) == (4, 6, 2)
    assert content["margins"].tolist() == [0.5, -1.0, 2.0] and content["predicted"].tolist() == [1, 1, 1]
    assert content["report"] == {"accuracy": 2 / 3}
    assert content["instability"] == 1.0  # the monitor's own verdict (with its tol), read back by the report
    assert content["blame"]["worst"].tolist() == [1, 0] and content["blame"]["data_cluster"].tolist() == [2]


def test_margin_file_without_event_has_no_grid_rows(logged: list, tmp_path: Path) -> None:
    pictures = Pictures()
    publish(CheckPublisher(False, False, pictures), trainer(), result(event=False, blame=BLAME), "x", 6, None, tmp_path)
    assert pictures.calls == [("file", None)]
    assert [p.name for p in tmp_path.iterdir()] == [margin_file_name(4, 6)]


def test_no_margin_file_off_rank_zero_or_without_blame_or_directory(logged: list, tmp_path: Path) -> None:
    publisher = CheckPublisher(False, False, Pictures())
    publish(publisher, trainer(global_zero=False), result(blame=BLAME), "x", 1, None, tmp_path)
    publish(publisher, trainer(), result(blame=None), "x", 1, None, tmp_path)
    publish(publisher, trainer(), result(blame=BLAME), "x", 1, None, None)
    assert list(tmp_path.iterdir()) == []


def test_margin_file_holds_the_blamed_samples_results_not_the_dataset(
    logged: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real BlamePictures: the grid is drawn from the dataset (its items views of one 3 × 784 tensor), the file
    holds index, label, prediction and margin of the blamed samples and no byte of the inputs."""
    monkeypatch.setattr(blame_pictures, "log_figure", lambda t, tag, make, step: logged.append(("figure", tag)))
    features = torch.rand(3, 784)
    dataset = TensorDataset(features, MARGIN_PASS.targets)
    publisher = CheckPublisher(False, False, BlamePictures(blame_size=1, to_image=None))
    publish(publisher, trainer(), result(event=True, blame=BLAME), "x", 6, dataset, tmp_path)
    assert [call[1] for call in logged if call[0] == "figure"] == ["stability/blame"]  # the live grid
    path = tmp_path / margin_file_name(4, 6)
    assert path.stat().st_size < features.numel() * features.element_size()  # 9,408 bytes of inputs
    cells = torch.load(path, weights_only=True)["blame_cells"]
    worst = {key: value.tolist() if isinstance(value, torch.Tensor) else value for key, value in cells["worst"].items()}
    assert worst == {
        "index": [1],
        "target": [0],
        "predicted": [1],
        "margin": [-1.0],
        "why": "worst margins",
        "total": 2,
        "picked": "smallest margins",
    }
    assert cells["data_cluster"]["index"].tolist() == [2] and cells["witness"]["index"].numel() == 0


# ---------------------------------------------------------------------------------------------------- the live grid

WIDE = MarginPass(  # 50 samples, all blamed as worst margins
    torch.arange(50),
    torch.arange(50) % 3,
    torch.linspace(-2.0, 2.0, 50, dtype=torch.float64),
    torch.zeros(50, dtype=torch.float64),
    (torch.arange(50) + 1) % 3,
    num_classes=3,
)
WIDE_BLAME = BlameSets(torch.arange(5), torch.arange(41), torch.tensor([], dtype=torch.long), torch.tensor([7]))
CUT_WORST = "cause: smallest margins: 16 of 41 shown: the 16 smallest margins"


def test_a_cut_set_says_how_many_of_how_many_are_shown() -> None:
    pictures = BlamePictures(blame_size=16, to_image=None)
    rows = pictures.cells(trainer(), TensorDataset(torch.rand(50, 1, 28, 28), WIDE.targets), WIDE_BLAME, WIDE)
    titles = [name for name, _ in rows]
    assert titles[0] == CUT_WORST and titles[3] == "flipped to wrong since the previous check (5)"  # causes first
    assert [len(cells) for _, cells in rows] == [16, 0, 1, 5]
    layout = blame_layout(rows, "t")
    assert CUT_WORST in " ".join(layout.strings("row")) and len(layout.pictures) == 22  # wrapped to the card
    assert layout.strings("caption")[:2] == ["#0", "0 -> 1"]


@pytest.mark.parametrize(
    "inputs",
    [torch.randint(0, 1000, (50, 16)), torch.rand(50, 1), torch.rand(50, 10)],
    ids=["16 tokens", "1-d", "10 features"],
)
def test_inputs_that_are_no_pictures_are_tabled(inputs: torch.Tensor) -> None:
    pictures = BlamePictures(blame_size=16, to_image=None)
    rows = pictures.cells(trainer(), TensorDataset(inputs, WIDE.targets), WIDE_BLAME, WIDE)
    layout = blame_layout(rows, "t")
    assert layout.pictures == [] and " ".join(layout.strings("row")).startswith(CUT_WORST)
    expected = [
        (str(k), str(k % 3), str((k + 1) % 3), f"{float(WIDE.margins[k]):.3g}", why)
        for k, why in [
            *((k, "worst margin") for k in range(16)),
            (7, "data cluster"),
            *((k, "flipped") for k in range(5)),
        ]
    ]
    assert [entry[:5] for entry in layout.table] == expected
    if inputs.shape[1] == 1:  # a 1-d input's value is printed in its own column
        assert layout.strings("header")[-1] == "input" and layout.table[0][-1] == f"{float(inputs[0, 0]):.3g}"
    else:
        assert layout.strings("header")[-1] == "why blamed"


def test_the_live_grid_reaches_the_logger_rendered_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real log_figure and a CSVLogger: the PNG file holds the composed grid's pixels; nothing draws it again."""
    from PIL import Image
    from pytorch_lightning.loggers import CSVLogger

    monkeypatch.setattr(loggers, "render", lambda figure: pytest.fail("re-rendered"))
    logger = CSVLogger(tmp_path)
    run = SimpleNamespace(is_global_zero=True, global_step=17, loggers=[logger])
    dataset = TensorDataset(torch.rand(50, 784), WIDE.targets)
    rows = BlamePictures(blame_size=16, to_image=None).log_grid(run, dataset, WIDE_BLAME, WIDE, 3, 17)
    assert [len(cells) for _, cells in rows] == [16, 0, 1, 5]
    png = Path(logger.log_dir) / "figures" / "stability" / "blame" / "step_00000017.png"
    pixels = np.asarray(Image.open(png).convert("RGB"))
    title = (
        "instability at epoch 3: causes (smallest margins, data cluster), then the samples that flipped "
        "(label -> prediction)"
    )
    assert np.array_equal(pixels, blame_pictures.blame_figure(rows, title).rgb) and pixels.shape[1] <= 320
