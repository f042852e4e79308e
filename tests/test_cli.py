"""The `lightning-stability` command's own parser: the subcommands it lists, their options, --version."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

import lightning_stability
from lightning_stability.cli import main

SUBCOMMANDS = ["fit", "validate", "test", "predict", "report", "samples", "check-data"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``main(argv)``'s exit code (argparse exits after --help/--version and on errors), stdout and stderr."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps its help to the terminal


def test_help_lists_every_subcommand(capsys) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    # "    name   help text", the help text on the next line after a long name
    listed = re.findall(r"^ {4}([a-z-]+)\s+\S", out, flags=re.MULTILINE)
    assert listed == SUBCOMMANDS


def test_report_help_lists_its_options(capsys) -> None:
    code, out, _ = run(["report", "--help"], capsys)
    assert code == 0
    assert re.search(r"^ +-o OUTPUT, --output OUTPUT\s+PNG to write", out, flags=re.MULTILINE)
    assert re.search(r"^ +log_dir\s+a run's log directory", out, flags=re.MULTILINE)


def test_check_data_help_lists_its_options(capsys) -> None:
    code, out, _ = run(["check-data", "--help"], capsys)
    assert code == 0
    assert re.search(r"^ +--config CONFIG\s+a LightningCLI config", out, flags=re.MULTILINE)
    assert re.search(r"^ +--source \{embedded,idx,torchvision\}\s+MNIST source", out, flags=re.MULTILINE)


def test_check_data_needs_exactly_one_of_config_and_source(capsys) -> None:
    code, _, err = run(["check-data"], capsys)
    assert code == 2 and "one of the arguments --config --source is required" in err
    code, _, err = run(["check-data", "--config", "a.yaml", "--source", "embedded"], capsys)
    assert code == 2 and "not allowed with argument" in err


def test_a_subcommand_is_required(capsys) -> None:
    code, _, err = run([], capsys)
    assert code == 2 and "SUBCOMMAND" in err
    code, _, err = run(["train"], capsys)
    assert code == 2 and "invalid choice: 'train'" in err


def test_version_is_the_installed_distribution_version(capsys) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"lightning-stability {version('lightning-stability')}"
    assert lightning_stability.__version__ == version("lightning-stability")
