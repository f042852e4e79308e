"""Every `StabilityMonitor` option means the same from the command line, from a YAML config and from Python.

Each case builds the monitor three ways — ``--trainer.callbacks+=lightning_stability.StabilityMonitor
--trainer.callbacks.<option>=<text>``, a config whose callback has ``<option>: <text>``, and
``StabilityMonitor(<option>=<value>)`` — and compares the monitor's attribute of that name (value and type:
``save_margins=true`` must be the boolean, not a folder named ``true``). The command lines are parsed by the
command's own LightningCLI with ``run=False``: nothing trains, nothing is written outside ``tmp_path``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

from lightning_stability import StabilityMonitor
from lightning_stability.cli import _lightning_cli
from lightning_stability.cli.distribution import choose_distribution

from .helpers import CONFIGS_DIR

MONITOR = "lightning_stability.StabilityMonitor"

# (option, its text on a command line and in YAML, the same value in Python, other options it needs, as text)
CASES: list[tuple[str, str, Any, dict[str, str]]] = [
    ("weights", "balanced", "balanced", {}),
    ("ignore_index", "null", None, {}),
    ("batch_size", "32", 32, {}),
    ("num_workers", "1", 1, {}),
    ("stochastic_data", "approximate", "approximate", {}),
    ("every_n_epochs", "2", 2, {}),
    ("check_at_start", "false", False, {}),
    ("tol", "0.01", 0.01, {}),
    ("stop_on_instability", "true", True, {}),
    ("patience", "3", 3, {}),
    ("verbose", "true", True, {}),
    ("quantiles", "[0.1, 0.9]", (0.1, 0.9), {}),
    ("log_histogram", "false", False, {}),
    ("log_figure", "true", True, {}),
    ("log_cost", "false", False, {}),
    ("blame_size", "4", 4, {}),
    ("save_margins", "true", True, {}),
    ("save_margins", "True", True, {}),
    ("save_margins", "false", False, {}),
    ("save_margins", "runs/margins", "runs/margins", {}),
    ("save_samples", "true", True, {}),
    ("sample_history", "true", True, {}),
    ("grid", "{zetas: [0.01, 0.1]}", {"zetas": [0.01, 0.1]}, {}),
    ("check_data", "true", True, {}),
    ("check_data", "{max_mass: 0.1}", {"max_mass": 0.1}, {}),
    ("subset_size", "100", 100, {}),
    ("confidence", "0.9", 0.9, {}),
    ("full_every_n_epochs", "2", 2, {"subset_size": "100"}),
    ("subset_seed", "3", 3, {}),
]

# The options no command line can express (Python objects), each with why; `weights` also takes a tensor, but its
# strings are covered above.
SKIPPED = {
    "dataset": "a torch Dataset object",
    "dataloader": "a DataLoader object",
    "forward_fn": "a callable",
    "to_image": "a callable",
}


def test_every_option_is_covered_or_skipped_with_a_reason() -> None:
    options = set(inspect.signature(StabilityMonitor.__init__).parameters) - {"self"}
    assert options == {option for option, *_ in CASES} | set(SKIPPED)
    assert set(SKIPPED).isdisjoint(option for option, *_ in CASES)


@pytest.fixture(scope="module")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example's model and data (configs/mnist_abs_mlp.yaml), a Trainer that writes nothing, no callbacks."""
    example = yaml.safe_load((CONFIGS_DIR / "mnist_abs_mlp.yaml").read_text())
    root = tmp_path_factory.mktemp("trainer_root")
    trainer = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(root),
    }
    return {key: example[key] for key in ("seed_everything", "model", "data")} | {"trainer": trainer}


def parsed_monitor(args: list[str]) -> StabilityMonitor:
    """The one `StabilityMonitor` of the Trainer that the command's LightningCLI builds from ``args``, not run."""
    cli = _lightning_cli(choose_distribution(args))(args=args, run=False, auto_configure_optimizers=False)
    (monitor,) = [callback for callback in cli.trainer.callbacks if isinstance(callback, StabilityMonitor)]
    return monitor


def typed(value: Any) -> Any:
    """``value`` with the type of every part beside it: ``True`` and ``1``, ``"1"`` and ``1`` compare unequal."""
    if isinstance(value, dict):
        return dict, {key: typed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value), [typed(item) for item in value]
    return type(value), value


@pytest.mark.parametrize(
    ("option", "text", "value", "extra"), CASES, ids=[f"{option}={text}" for option, text, *_ in CASES]
)
def test_an_option_means_the_same_on_the_command_line_in_yaml_and_in_python(
    base_config: dict[str, Any], tmp_path: Path, option: str, text: str, value: Any, extra: dict[str, str]
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(base_config))
    extra_args = [f"--trainer.callbacks.{key}={item}" for key, item in extra.items()]
    from_command_line = parsed_monitor(
        ["--config", str(base), f"--trainer.callbacks+={MONITOR}", f"--trainer.callbacks.{option}={text}", *extra_args]
    )

    # the YAML text as written, not re-dumped: `true`, `runs/margins`, `[0.1, 0.9]`
    init_args = "".join(f"\n        {key}: {item}" for key, item in extra.items())
    callback = tmp_path / "callback.yaml"
    callback.write_text(
        f"trainer:\n  callbacks:\n    - class_path: {MONITOR}\n      init_args:\n        {option}: {text}{init_args}\n"
    )
    from_yaml = parsed_monitor(["--config", str(base), "--config", str(callback)])

    from_python = StabilityMonitor(**{option: value}, **{key: yaml.safe_load(item) for key, item in extra.items()})

    expected = typed(getattr(from_python, option))
    assert expected == typed(value), f"monitor.{option} is not the value given"
    assert typed(getattr(from_command_line, option)) == expected, f"--trainer.callbacks.{option}={text}"
    assert typed(getattr(from_yaml, option)) == expected, f"YAML {option}: {text}"
