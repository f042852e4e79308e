"""RunOutputs (callbacks/run_outputs.py): the run directory, the margin/samples/data-check directories, writability."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from lightning_stability.callbacks.run_outputs import RunOutputs, choose_run_directory
from lightning_stability.distributions import MisconfigurationError
from tests.helpers import trainer_kwargs


@pytest.fixture(params=["pytorch_lightning", "lightning.pytorch"])
def distribution(request: pytest.FixtureRequest):
    """Each installed Lightning distribution's package."""
    return pytest.importorskip(request.param)


def make_trainer(distribution, root: Path, logger: object = False):
    return distribution.Trainer(**trainer_kwargs(default_root_dir=str(root), logger=logger))


def csv_logger(distribution, root: Path):
    return importlib.import_module(f"{distribution.__name__}.loggers").CSVLogger(root, name="csv", version=3)


def tensorboard_logger(distribution, root: Path):
    return importlib.import_module(f"{distribution.__name__}.loggers").TensorBoardLogger(root, name="tb", version=5)


def test_nothing_written_no_run_directory(distribution, tmp_path: Path) -> None:
    trainer = make_trainer(distribution, tmp_path)
    outputs = RunOutputs(None, None, False)
    outputs.setup(trainer)
    assert outputs.run_dir is None
    assert outputs.margins_dir(trainer) is None and outputs.samples_dir(trainer) is None
    assert outputs.data_check_dir(trainer) == tmp_path
    assert not (tmp_path / "stability_runs").exists()


def test_save_margins_false_is_off(distribution, tmp_path: Path) -> None:
    trainer = make_trainer(distribution, tmp_path)
    outputs = RunOutputs(False, None, False)
    outputs.setup(trainer)
    assert outputs.run_dir is None and outputs.margins_dir(trainer) is None and outputs.samples_dir(trainer) is None


def test_margins_in_the_csv_loggers_version_directory(distribution, tmp_path: Path) -> None:
    trainer = make_trainer(distribution, tmp_path, csv_logger(distribution, tmp_path / "logs"))
    outputs = RunOutputs(True, None, False)
    outputs.setup(trainer)
    version = tmp_path / "logs" / "csv" / "version_3"
    assert outputs.run_dir == version
    assert outputs.margins_dir(trainer) == version / "margins"
    assert (version / "margins").is_dir()  # created by the writability check, probe removed
    assert list((version / "margins").iterdir()) == []
    assert outputs.samples_dir(trainer) == version  # save_samples=None follows save_margins
    assert not (tmp_path / "stability_runs").exists()


def test_margins_in_the_tensorboard_loggers_version_directory(distribution, tmp_path: Path) -> None:
    trainer = make_trainer(distribution, tmp_path, tensorboard_logger(distribution, tmp_path / "logs"))
    outputs = RunOutputs(True, False, True)
    outputs.setup(trainer)
    version = tmp_path / "logs" / "tb" / "version_5"
    assert outputs.run_dir == version
    assert outputs.margins_dir(trainer) == version / "margins"
    assert outputs.samples_dir(trainer) is None  # save_samples=False
    assert outputs.data_check_dir(trainer) == version


def test_without_logger_each_run_gets_a_fresh_directory(distribution, tmp_path: Path) -> None:
    trainer = make_trainer(distribution, tmp_path)
    first, second = RunOutputs(True, None, False), RunOutputs(True, None, False)
    first.setup(trainer)
    second.setup(trainer)
    assert first.run_dir == tmp_path / "stability_runs" / "version_0"
    assert second.run_dir == tmp_path / "stability_runs" / "version_1"
    assert first.margins_dir(trainer) == tmp_path / "stability_runs" / "version_0" / "margins"
    assert second.samples_dir(trainer) == tmp_path / "stability_runs" / "version_1"


def test_a_non_versioned_logger_does_not_give_the_run_directory(distribution, tmp_path: Path) -> None:
    class Recording(distribution.loggers.Logger):
        name, version = "recording", 0

        def log_metrics(self, metrics, step=None) -> None:
            pass

        def log_hyperparams(self, params, *args, **kwargs) -> None:
            pass

        @property
        def log_dir(self) -> str:
            return str(tmp_path / "not_used")

    trainer = make_trainer(distribution, tmp_path, Recording())
    assert choose_run_directory(trainer) == tmp_path / "stability_runs" / "version_0"


def test_explicit_margin_directory(distribution, tmp_path: Path) -> None:
    trainer = make_trainer(distribution, tmp_path, csv_logger(distribution, tmp_path / "logs"))
    target = tmp_path / "mine"
    outputs = RunOutputs(str(target), None, False)
    outputs.setup(trainer)
    assert outputs.run_dir is None  # nothing goes to the run directory
    assert outputs.margins_dir(trainer) == target and outputs.samples_dir(trainer) == target
    assert target.is_dir()
    assert outputs.data_check_dir(trainer) == tmp_path


def test_explicit_margin_directory_samples_off(distribution, tmp_path: Path) -> None:
    trainer = make_trainer(distribution, tmp_path)
    outputs = RunOutputs(tmp_path / "m", False, False)
    outputs.setup(trainer)
    assert outputs.margins_dir(trainer) == tmp_path / "m" and outputs.samples_dir(trainer) is None


def test_samples_without_margins_go_to_the_run_directory(distribution, tmp_path: Path) -> None:
    trainer = make_trainer(distribution, tmp_path)
    outputs = RunOutputs(None, True, False)
    outputs.setup(trainer)
    assert outputs.run_dir == tmp_path / "stability_runs" / "version_0"
    assert outputs.samples_dir(trainer) == tmp_path / "stability_runs" / "version_0"
    assert outputs.margins_dir(trainer) is None


def test_data_check_alone_chooses_a_run_directory(distribution, tmp_path: Path) -> None:
    trainer = make_trainer(distribution, tmp_path)
    outputs = RunOutputs(None, None, True)
    outputs.setup(trainer)
    assert outputs.data_check_dir(trainer) == tmp_path / "stability_runs" / "version_0"
    assert outputs.samples_dir(trainer) is None and outputs.margins_dir(trainer) is None


def test_before_setup_the_defaults_are_default_root_dir(distribution, tmp_path: Path) -> None:
    trainer = make_trainer(distribution, tmp_path)
    outputs = RunOutputs(True, None, True)
    assert outputs.margins_dir(trainer) == tmp_path / "margins"
    assert outputs.samples_dir(trainer) == tmp_path
    assert outputs.data_check_dir(trainer) == tmp_path


def test_unwritable_margin_directory_names_the_option_and_path(distribution, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    trainer = make_trainer(distribution, tmp_path)
    with pytest.raises(MisconfigurationError, match=r"StabilityMonitor\(save_margins=\.\.\.\): cannot write to") as e:
        RunOutputs(blocker / "margins", None, False).setup(trainer)
    assert str(blocker / "margins") in str(e.value)


def test_unwritable_samples_directory_names_the_option(distribution, tmp_path: Path) -> None:
    # the logger's version directory lies under a file: margins are off, samples.csv cannot be written there
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    logger = importlib.import_module(f"{distribution.__name__}.loggers").CSVLogger(blocker, name="csv", version=0)
    trainer = make_trainer(distribution, tmp_path, logger)
    with pytest.raises(MisconfigurationError, match=r"StabilityMonitor\(save_samples=\.\.\.\)"):
        RunOutputs(None, True, False).setup(trainer)


def test_unwritable_data_check_directory_names_the_option(distribution, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    logger = importlib.import_module(f"{distribution.__name__}.loggers").CSVLogger(blocker, name="csv", version=0)
    trainer = make_trainer(distribution, tmp_path, logger)
    with pytest.raises(MisconfigurationError, match=r"StabilityMonitor\(check_data=\.\.\.\)"):
        RunOutputs(None, None, True).setup(trainer)


def test_unwritable_default_root_dir_names_the_option(distribution, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    trainer = make_trainer(distribution, blocker / "root")
    with pytest.raises(MisconfigurationError, match=r"StabilityMonitor\(check_data=\.\.\.\)"):
        RunOutputs(None, None, True).setup(trainer)


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        ((True, None, False), "save_margins"),
        ((True, None, True), "save_margins"),
        ((None, True, False), "save_samples"),
        ((None, True, True), "check_data"),
    ],
)
def test_unwritable_default_root_dir_names_the_option_and_path(
    distribution, tmp_path: Path, arguments: tuple, option: str
) -> None:
    """Without a TensorBoard/CSV logger the run directory is made under ``default_root_dir``: the first option that
    writes there is named, with the path, on every rank (the verdict is broadcast)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    trainer = make_trainer(distribution, blocker / "root")
    with pytest.raises(MisconfigurationError, match=rf"StabilityMonitor\({option}=\.\.\.\): cannot create") as e:
        RunOutputs(*arguments).setup(trainer)
    assert str(blocker / "root" / "stability_runs") in str(e.value) and "default_root_dir" in str(e.value)


def test_unwritable_default_root_dir_names_the_option_of_choose_run_directory(distribution, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    trainer = make_trainer(distribution, blocker / "root")
    with pytest.raises(MisconfigurationError, match=r"StabilityMonitor\(check_data=\.\.\.\)"):
        choose_run_directory(trainer, "check_data")
