"""Which Lightning distribution (``lightning.pytorch`` or ``pytorch_lightning``) runs a LightningCLI command line,
read from the class paths of its config files and options (`choose_distribution`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CommandError

__all__ = ["choose_distribution"]

_DISTRIBUTION_PREFIXES = {"lightning.pytorch": "lightning.pytorch.", "pytorch_lightning": "pytorch_lightning."}


def _config_values(argv: list[str]) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """The ``model`` and ``data`` entries and every ``trainer.callbacks`` / ``trainer.logger`` entry of a
    LightningCLI command line: its ``--config`` files (or YAML strings) and its ``--model``, ``--data``,
    ``--trainer.callbacks``, ``--trainer.logger`` options, later ones overriding earlier ones."""
    import yaml  # type: ignore[import-untyped]

    def load(text: str) -> Any:
        try:
            path = Path(text)
            return yaml.safe_load(path.read_text() if path.is_file() else text)
        except (OSError, ValueError, yaml.YAMLError):
            return None

    chosen: dict[str, Any] = {}
    trainer_entries: list[tuple[str, Any]] = []
    index = 0
    while index < len(argv):
        option, _, value = argv[index].partition("=")
        if not value and index + 1 < len(argv) and option.startswith("-") and "=" not in argv[index]:
            value = argv[index + 1]
        index += 1
        if option in ("-c", "--config"):
            config = load(value)
            if isinstance(config, dict):
                for key in ("model", "data"):
                    if key in config:
                        chosen[key] = config[key]
                trainer = config.get("trainer")
                if isinstance(trainer, dict):
                    trainer_entries += [(f"trainer.{key}", trainer.get(key)) for key in ("callbacks", "logger")]
        elif option in ("--model", "--data", "--model.class_path", "--data.class_path"):
            key = option[2:].split(".")[0]
            loaded = load(value)
            chosen[key] = loaded if isinstance(loaded, dict) else value
        elif option.rstrip("+") in ("--trainer.callbacks", "--trainer.logger"):
            loaded = load(value)
            trainer_entries.append((option[2:].rstrip("+"), loaded if isinstance(loaded, dict | list) else value))
    return chosen, trainer_entries


def _class_paths(entry: Any) -> list[str]:
    """The class paths in a config entry: a class path, ``{class_path: ...}``, or a list of them."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        return [entry["class_path"]] if isinstance(entry.get("class_path"), str) else []
    if isinstance(entry, list):
        return [path for item in entry for path in _class_paths(item)]
    return []


def _distributions_of(class_path: str) -> set[str]:
    """The Lightning distributions whose classes ``class_path``'s class derives from (both for the package's own
    callbacks, none for an unknown class or one that cannot be imported here: LightningCLI will say why)."""
    import importlib

    from ..distributions import AVAILABLE

    for name, prefix in _DISTRIBUTION_PREFIXES.items():
        if class_path.startswith(prefix):
            return {name}
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name) if module else None
    except Exception:  # an import error of the user's module is LightningCLI's to report, with its context
        return set()
    found = set()
    for base in getattr(cls, "__mro__", ()):
        for distribution in AVAILABLE:
            if base.__module__ == distribution or base.__module__.startswith(distribution + "."):
                found.add(distribution)
    return found


def choose_distribution(argv: list[str]) -> str:
    """The Lightning distribution (``"lightning.pytorch"`` or ``"pytorch_lightning"``) whose LightningCLI,
    Trainer, callbacks and loggers run the command line ``argv``: that of the config's model and data module
    (``class_path``), else that of its ``trainer.callbacks`` / ``trainer.logger`` class paths; ``pytorch_lightning``
    when none tells (and it is installed). The package's own callbacks belong to both.

    Raises:
        CommandError: if the model and the data module come from different distributions, or a class path of
            ``trainer.callbacks`` / ``trainer.logger`` names a class of the other distribution only (refused, not
            mapped: the message names the class path to write instead).
    """
    from ..distributions import AVAILABLE

    chosen, trainer_entries = _config_values(argv)
    entries = [(key, chosen.get(key)) for key in ("model", "data")] + trainer_entries
    distribution = None
    named_by = ""
    for key, entry in entries:
        for class_path in _class_paths(entry):
            found = _distributions_of(class_path)
            if not found or distribution in found:
                continue
            if distribution is None:
                if len(found) == 1:
                    (distribution,) = found
                    named_by = f"{key} {class_path}"
                continue
            (other,) = found
            suggestion = ""
            if class_path.startswith(_DISTRIBUTION_PREFIXES[other]):
                same = _DISTRIBUTION_PREFIXES[distribution] + class_path[len(_DISTRIBUTION_PREFIXES[other]) :]
                suggestion = f"; write {same} (or the bare class name)"
            raise CommandError(
                f"{key}: {class_path} is a {other} class but the {named_by} is a {distribution} one; one run "
                f"cannot mix the two Lightning distributions (import lightning as L, import pytorch_lightning as pl)"
                f"{suggestion}"
            )
    if distribution is None:
        distribution = "pytorch_lightning" if "pytorch_lightning" in AVAILABLE else AVAILABLE[0]
    return distribution
