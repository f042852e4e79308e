"""The `lightning-stability` command's own parser: the subcommands it lists, their options, --version."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version

import pytest

import lightning_stability
from lightning_stability.cli import main
from lightning_stability.cli.distribution import choose_distribution

from .helpers import REPO_ROOT, SMALL_GRID

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


# ---------------------------------------------------------------------------------------------------- fit


def fit_config(tmp_path, **trainer: object) -> str:
    """A config of tests/lightning_l_modules.py's `import lightning as L` model and data, with a StabilityMonitor."""
    import yaml

    config = {
        "model": {"class_path": "tests.lightning_l_modules.TinyModel"},
        "data": {"class_path": "tests.lightning_l_modules.TinyData"},
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 1,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "enable_checkpointing": False,
            "default_root_dir": str(tmp_path),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path)}},
            "callbacks": [
                {
                    "class_path": "lightning_stability.StabilityMonitor",
                    "init_args": {"save_margins": True, "grid": SMALL_GRID},
                }
            ],
            **trainer,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_fit_trains_a_lightning_L_module_with_the_monitor(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["lightning-stability"])  # LightningCLI warns if given args and sys.argv both
    assert main(["fit", "--config", fit_config(tmp_path)]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "lightning_logs" / "version_0"
    assert f"[lightning-stability] logs: {run_dir}" in out
    assert "[lightning-stability] last check: training accuracy" in out
    assert f"[lightning-stability] report: {run_dir / 'report.png'}" in out
    assert sorted(path.name for path in (run_dir / "margins").iterdir()) == [
        "margins_epoch=0000_step=00000003.pt",
        "margins_epoch=start_step=00000000.pt",
    ]
    assert (run_dir / "metrics.csv").exists() and (run_dir / "samples.csv").exists()


def test_choose_distribution_follows_the_model_and_data_class_paths(tmp_path) -> None:
    assert choose_distribution(["--config", fit_config(tmp_path)]) == "lightning.pytorch"
    pl_model = "tests.test_samples_cli.Linear64"
    assert choose_distribution(["--model", pl_model, "--trainer.logger=pytorch_lightning.loggers.CSVLogger"]) == (
        "pytorch_lightning"
    )
    assert choose_distribution(["--trainer.callbacks+=lightning.pytorch.callbacks.EarlyStopping"]) == (
        "lightning.pytorch"
    )
    assert choose_distribution(["--trainer.max_epochs", "1"]) == "pytorch_lightning"  # the default


@pytest.mark.parametrize(
    ("extra", "wanted"),
    [
        (
            ["--trainer.callbacks+=pytorch_lightning.callbacks.EarlyStopping"],
            "lightning.pytorch.callbacks.EarlyStopping",
        ),
        (["--trainer.logger", "pytorch_lightning.loggers.CSVLogger"], "lightning.pytorch.loggers.CSVLogger"),
        (["--data", "tests.test_samples_cli.Linear64"], "one run cannot mix"),
    ],
    ids=["callback", "logger", "data"],
)
def test_fit_refuses_classes_of_the_other_distribution_in_one_line(tmp_path, capsys, extra, wanted) -> None:
    code, out, err = run(["fit", "--config", fit_config(tmp_path), *extra], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("lightning-stability fit: error: ") and wanted in err
    assert "pytorch_lightning" in err and "Traceback" not in err
    assert not (tmp_path / "lightning_logs").exists()


def test_fit_help_lists_the_package_monitors_but_not_their_bases(capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["lightning-stability"])  # LightningCLI warns if given args and sys.argv both
    code, out, _ = run(["fit", "--help"], capsys)
    assert code == 0
    # "--trainer.callbacks ... (type: ..., known subclasses: a, b, ...)", wrapped anywhere, even inside a path
    listed = re.search(r"--trainer\.callbacks\+ CALLBACKS\s.*?known subclasses: ([^)]*)\)", out, flags=re.DOTALL)
    assert listed is not None
    paths = "".join(listed.group(1).split()).split(",")
    assert "pytorch_lightning.callbacks.EarlyStopping" in paths
    assert sorted(path for path in paths if path.startswith("lightning_stability.")) == [
        "lightning_stability.GradientFlowMonitor",
        "lightning_stability.ParametrizationMonitor",
        "lightning_stability.SharpnessMonitor",
        "lightning_stability.StabilityMonitor",
    ]
    assert "CallbackBase" not in out and "EpochMonitor" not in out


# ---------------------------------------------------------------------------------------------------- startup


def test_the_command_and_its_light_subcommands_import_neither_torch_nor_lightning() -> None:
    """`lightning-stability --help` (and report, samples, check-data) answer without importing torch or Lightning,
    which takes seconds: the package's names are imported on first use (lightning_stability/__init__.py)."""
    script = """
import contextlib, io, sys
from lightning_stability.cli import main
for argv in (["--help"], ["--version"], ["report", "--help"], ["samples", "--help"], ["check-data", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(argv)
heavy = sorted({"torch", "pytorch_lightning", "lightning", "jsonargparse", "matplotlib"} & set(sys.modules))
assert not heavy, heavy
import lightning_stability
from lightning_stability import StabilityMonitor
assert "torch" in sys.modules and lightning_stability.StabilityMonitor is StabilityMonitor
assert lightning_stability.theory.__name__ == "lightning_stability.theory"
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, result.stderr
