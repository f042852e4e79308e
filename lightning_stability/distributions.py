"""Both Lightning distributions, first-class: ``lightning`` (``import lightning.pytorch``) and ``pytorch_lightning``.

The two distributions ship the same classes under two names, and a class of one is not a subclass of the other's.
So that one class of ours works everywhere:

* every callback of the package derives from the ``Callback`` class of **each** installed distribution
  (:data:`CALLBACK_BASES`): either Trainer runs it, and either ``LightningCLI`` accepts it by class path
  (``lightning_stability.StabilityMonitor``);
* every configuration error is a :class:`MisconfigurationError`, an instance of both distributions'
  ``MisconfigurationException``;
* rank-zero output goes through the running Trainer's own distribution (:func:`rank_zero_info`), whose rank the
  Trainer sets;
* loggers are recognised by class name, not by ``isinstance`` against one distribution (see
  :mod:`lightning_stability.loggers`).

The base install pulls ``pytorch-lightning``; ``pip install "lightning-stability[lightning]"`` adds ``lightning``.
Either one alone is enough.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = [
    "AVAILABLE",
    "CALLBACK_BASES",
    "CallbackBase",
    "MisconfigurationError",
    "distribution_of",
    "grad_norm",
    "lightning_classes",
    "rank_zero_info",
    "rank_zero_warn",
    "user_stacklevel",
]

_DISTRIBUTIONS = (("lightning.pytorch", "lightning.fabric"), ("pytorch_lightning", "lightning_fabric"))


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_pytorch_packages = {name: _import(name) for name, _ in _DISTRIBUTIONS}
_fabric_packages = {name: _import(fabric) for name, fabric in _DISTRIBUTIONS}
AVAILABLE: tuple[str, ...] = tuple(name for name, module in _pytorch_packages.items() if module is not None)
"""The installed distributions' package names, ``"lightning.pytorch"`` and/or ``"pytorch_lightning"``."""

if not AVAILABLE:
    raise ImportError(
        "lightning-stability needs PyTorch Lightning: `pip install pytorch-lightning` or `pip install lightning`."
    )


def _attribute(package: str, module: str, name: str) -> Any:
    return getattr(importlib.import_module(f"{package}.{module}"), name)


def lightning_classes(module: str, name: str) -> tuple[type, ...]:
    """The class ``name`` of ``<distribution>.<module>`` in every installed distribution, for ``isinstance``
    checks that must recognise either (``lightning_classes("callbacks", "EarlyStopping")``)."""
    return tuple(_attribute(package, module, name) for package in AVAILABLE)


CALLBACK_BASES: tuple[type, ...] = lightning_classes("callbacks", "Callback")
"""The ``Callback`` class of every installed distribution; the package's callbacks derive from all of them."""

_EXCEPTION_BASES: tuple[type, ...] = tuple(
    _attribute(fabric, "utilities.exceptions", "MisconfigurationException")
    for name, fabric in _DISTRIBUTIONS
    if name in AVAILABLE and _fabric_packages[name] is not None
)


if TYPE_CHECKING:  # the type checker sees pytorch_lightning's classes (the dev install has both)
    from lightning_fabric.utilities.exceptions import MisconfigurationException as _ExceptionBase
    from pytorch_lightning.callbacks import Callback as CallbackBase
else:
    _ExceptionBase = type("_ExceptionBase", _EXCEPTION_BASES, {"__module__": __name__})
    CallbackBase = type(
        "CallbackBase",
        CALLBACK_BASES,
        {"__module__": __name__, "__doc__": "A Callback of every installed Lightning distribution."},
    )


class MisconfigurationError(_ExceptionBase):
    """A setup or option error, with what was wrong and how to fix it; an instance of the
    ``MisconfigurationException`` of every installed Lightning distribution."""


def distribution_of(obj: object) -> str:
    """The distribution (``"lightning.pytorch"`` or ``"pytorch_lightning"``) whose class ``obj`` is an instance
    of (a Trainer, a logger, a module); the first installed one if it is neither's."""
    for cls in type(obj).__mro__:
        module = cls.__module__
        for name in AVAILABLE:
            if module == name or module.startswith(name + "."):
                return name
    return AVAILABLE[0]


def _rank_zero(trainer: pl.Trainer | None) -> ModuleType:
    name = distribution_of(trainer) if trainer is not None else AVAILABLE[0]
    return importlib.import_module(f"{name}.utilities.rank_zero")


def rank_zero_info(trainer: pl.Trainer | None, message: str) -> None:
    """Log ``message`` at INFO level on global rank zero of ``trainer``'s distribution."""
    _rank_zero(trainer).rank_zero_info(message)


LIBRARY_DIRECTORIES = tuple(
    str(Path(spec.origin).parent)
    for name in (
        "lightning_stability",
        "pytorch_lightning",
        "lightning",
        "lightning_fabric",
        "lightning_utilities",
        "torch",
    )
    if (spec := importlib.util.find_spec(name)) is not None and spec.origin is not None
)
"""Where the frames of the package, of both Lightning distributions and of torch live: a warning points past them."""


def user_stacklevel() -> int:
    """The ``stacklevel`` (for a ``warnings.warn`` in the caller of this function) of the first frame outside
    `LIBRARY_DIRECTORIES` — the user's line that started the work (``trainer.fit(...)``, a script), so a
    warning names that line instead of the package's; the outermost frame if every frame is a library's."""
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    level, current = 1, caller
    while current is not None and current.f_code.co_filename.startswith(LIBRARY_DIRECTORIES):
        if current.f_back is None:
            break
        current, level = current.f_back, level + 1
    return level


def rank_zero_warn(trainer: pl.Trainer | None, message: str) -> None:
    """Warn ``message`` on global rank zero of ``trainer``'s distribution, located at the user's code
    (`user_stacklevel`), not the package's."""
    # Lightning's rank_zero_warn passes its stacklevel to warnings.warn two calls further in (its rank-zero
    # wrapper and its ``_warn``): 3 levels more than ours
    _rank_zero(trainer).rank_zero_warn(message, stacklevel=user_stacklevel() + 3)


grad_norm: Callable[..., dict[str, Any]] = _attribute(AVAILABLE[0], "utilities", "grad_norm")
"""Lightning's per-parameter gradient norms (the same function in both distributions)."""
