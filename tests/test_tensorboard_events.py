"""lightning_stability.tensorboard_events: event files read back offline, and logger steps on the checks' epoch axis."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

from lightning_stability.tensorboard_events import CHECK_EPOCH_TAGS, event_directories, read_scalars, step_to_epoch


def write(directory: Path, scalars: dict[str, list[tuple[int, float]]]) -> None:
    writer = SummaryWriter(str(directory))
    for tag, values in scalars.items():
        for step, value in values:
            writer.add_scalar(tag, value, step)
    writer.close()


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run with two event directories: the run's own and a nested ``sub/`` one (values exact in float32)."""
    write(tmp_path / "tb", {"stability/accuracy": [(0, 0.5), (1, 0.75)], "other/thing": [(0, 3.0)]})
    write(tmp_path / "tb" / "sub", {"stability/loss": [(2, 0.25)], "stability/accuracy_lower": [(1, 0.125)]})
    # a directory named like an event file is no event file
    (tmp_path / "tb" / "empty" / "events.out.tfevents.not_a_file").mkdir(parents=True)
    return tmp_path / "tb"


def test_event_directories_are_found_recursively_and_sorted(run: Path) -> None:
    assert event_directories(run) == [run, run / "sub"]
    assert event_directories(run / "empty") == []


def test_read_scalars_keeps_the_tags_a_pattern_fullmatches(run: Path) -> None:
    patterns = [re.compile(r"stability/(accuracy|loss)")]
    assert read_scalars(run, patterns) == {
        "stability/accuracy": [(0, 0.5), (1, 0.75)],
        "stability/loss": [(2, 0.25)],  # from sub/
    }  # not stability/accuracy_lower (a fullmatch), nor other/thing
    assert read_scalars(str(run), [re.compile("other/.*")]) == {"other/thing": [(0, 3.0)]}
    assert read_scalars(run, [re.compile("nothing")]) == {}
    assert read_scalars(run / "empty", patterns) == {}


def test_a_resumed_run_s_repeated_step_keeps_the_value_read_last(tmp_path: Path) -> None:
    first, resumed = tmp_path / "run", tmp_path / "run" / "version_1"
    write(first, {"stability/accuracy": [(0, 0.5), (1, 0.25), (2, 0.125)]})
    write(resumed, {"stability/accuracy": [(2, 1.0), (3, 0.75)]})  # read after run/ (sorted directories)
    assert read_scalars(tmp_path, [re.compile("stability/accuracy")]) == {
        "stability/accuracy": [(0, 0.5), (1, 0.25), (2, 1.0), (3, 0.75)]
    }


def test_check_epoch_tags() -> None:
    assert CHECK_EPOCH_TAGS == ("stability/check_epoch", "stability_diagnostics/check_epoch")


def test_step_to_epoch_from_the_logged_check_epochs() -> None:
    # checks of epochs 0, 1, 2 logged at steps 9, 19, 29 (under either tag): 10 steps per epoch
    scalars = {"stability/check_epoch": [(9, 0.0), (19, 1.0)], "stability_diagnostics/check_epoch": [(29, 2.0)]}
    convert = step_to_epoch([{"epoch": 5, "global_step": 1000}], scalars)  # the anchors win over the checks
    assert convert(np.array([9, 14, 19, 24, 29])).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    # outside the anchors: extended with the first and the last slope
    assert convert(np.array([4, 39])).tolist() == pytest.approx([-0.5, 3.0])


def test_step_to_epoch_from_the_margin_files_global_steps() -> None:
    # before training (epoch −1) at global step 0; a trained epoch's check logs at global_step − 1
    checks = [{"epoch": -1, "global_step": 0}, {"epoch": 0, "global_step": 10}, {"epoch": 1, "global_step": 30}]
    convert = step_to_epoch(checks, {"stability/check_epoch": [(9, 0.0)]})  # one anchor is not enough
    assert convert(np.array([0, 9, 19, 29])).tolist() == [-1.0, 0.0, 0.5, 1.0]
    assert convert(np.array([49])).tolist() == pytest.approx([2.0])


def test_step_to_epoch_with_one_or_no_anchor() -> None:
    one = step_to_epoch([{"epoch": 3, "global_step": 40}], {})
    assert one(np.array([0, 39, 100])).tolist() == [3.0, 3.0, 3.0]
    none = step_to_epoch([], {})
    assert none(np.array([0, 7])).tolist() == [0.0, 7.0]
