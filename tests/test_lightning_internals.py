"""Each private attribute of Lightning and torch the package reads or writes (all in
`lightning_stability.lightning_internals`), pinned against the installed Lightning of both distributions: that the
attribute exists and means what the package takes it to mean, on real callbacks, loggers and tiny CPU fits. A
Lightning upgrade that moves one fails the test named after the function. Also: no other package module touches
a private attribute of another object, and the internals module imports no Lightning.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import lightning_internals
from lightning_stability.distributions import AVAILABLE
from lightning_stability.lightning_internals import (
    align_checkpoint_schedule,
    autograd_function_class,
    batches_that_stepped,
    checkpoint_every_n_epochs,
    checkpoint_every_n_train_steps,
    checkpoint_saves_at_train_epoch_end,
    checkpoint_train_time_interval,
    early_stopping_checks_on_train_epoch_end,
    help_formatter_hiding,
    tensorboard_file_writer,
    user_sampler,
)

PACKAGE = Path(lightning_internals.__file__).resolve().parent
DISTRIBUTIONS = pytest.mark.parametrize("pl", [importlib.import_module(name) for name in AVAILABLE], ids=AVAILABLE)

NUM_SAMPLES, BATCH_SIZE = 24, 8  # 3 training batches per epoch


def dataset(num_samples: int = NUM_SAMPLES) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(num_samples, 4, generator=generator)
    return TensorDataset(x, (x[:, 0] > 0).long())


class Tiny:
    """A two-class linear model; logs ``epoch_value`` (the epoch number) once per epoch, from ``training_step``.
    Mixed into a distribution's LightningModule by `make_module`."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx) -> torch.Tensor:
        x, y = batch
        self.log("epoch_value", float(self.current_epoch), on_step=False, on_epoch=True)
        return nn.functional.cross_entropy(self.layer(x), y)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(dataset(), batch_size=BATCH_SIZE)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Validates:
    def validation_step(self, batch, batch_idx) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.layer(x), y))


class ValidationData:
    def val_dataloader(self) -> DataLoader:
        return DataLoader(dataset(), batch_size=BATCH_SIZE)


class EmptyValidationData:
    def val_dataloader(self) -> DataLoader:
        return DataLoader(dataset(0), batch_size=BATCH_SIZE)


class TwoStepsPerBatch:
    """Manual optimisation, two optimizer steps per batch: ``global_step`` counts both, the loggers' step one."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx) -> None:
        optimizer = self.optimizers()
        x, y = batch
        for _ in range(2):
            optimizer.zero_grad()
            self.manual_backward(nn.functional.cross_entropy(self.layer(x), y))
            optimizer.step()
        self.log("epoch_value", float(self.current_epoch), on_step=False, on_epoch=True)


VALIDATION = {  # how the module validates → its mixins
    "none": (),  # no validation_step
    "loader": (Validates, ValidationData),
    "no_loader": (Validates,),  # validation_step without a val_dataloader
    "empty_loader": (Validates, EmptyValidationData),
}


def make_module(pl: ModuleType, validation: str = "none", *mixins: type) -> Any:
    return type("Tiny", (*mixins, *VALIDATION[validation], Tiny, pl.LightningModule), {})()


def make_trainer(pl: ModuleType, root: Path, callbacks: list, **options: Any) -> Any:
    settings: dict[str, Any] = dict(
        default_root_dir=root,
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks),
        callbacks=callbacks,
    )
    settings.update(options)
    return pl.Trainer(**settings)


def recording_logger(pl: ModuleType) -> Any:
    class Recording(pl.loggers.Logger):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[int | None, dict[str, float]]] = []

        name = property(lambda self: "recording")
        version = property(lambda self: 0)

        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            self.calls.append((step, dict(metrics)))

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    return Recording()


def epoch_end_recorder(pl: ModuleType, seen: list[tuple[int, int]]) -> Any:
    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            seen.append((batches_that_stepped(trainer), trainer.global_step))

    return Record()


# ---------------------------------------------------------------------------------------------------- the Trainer


@DISTRIBUTIONS
def test_batches_that_stepped(pl: ModuleType, tmp_path: Path) -> None:
    """The count exists on the training epoch loop, is what the loggers get as the step (an epoch's
    ``on_epoch`` values at the count minus one; `scalars.check_log_step` logs a check at the count), counts batches not
    optimizer steps, and continues across a resume."""
    seen: list[tuple[int, int]] = []
    logger = recording_logger(pl)
    trainer = make_trainer(pl, tmp_path, [epoch_end_recorder(pl, seen)], logger=logger, log_every_n_steps=1)
    assert hasattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped")
    trainer.fit(make_module(pl))
    assert seen == [(3, 3), (6, 6)]
    epoch_steps = [step for step, metrics in logger.calls if "epoch_value" in metrics]
    assert epoch_steps == [stepped - 1 for stepped, _ in seen] == [2, 5]

    seen.clear()  # manual optimisation with two optimizer steps per batch: the count differs from global_step
    logger = recording_logger(pl)
    trainer = make_trainer(pl, tmp_path, [epoch_end_recorder(pl, seen)], logger=logger, log_every_n_steps=1)
    trainer.fit(make_module(pl, "none", TwoStepsPerBatch))
    assert seen == [(3, 6), (6, 12)]
    assert [step for step, metrics in logger.calls if "epoch_value" in metrics] == [2, 5]

    seen.clear()  # resumed from the end of epoch 0: the count goes on from the checkpoint
    checkpoint = tmp_path / "epoch0.ckpt"
    trainer = make_trainer(pl, tmp_path, [], max_epochs=1)
    trainer.fit(make_module(pl))
    trainer.save_checkpoint(checkpoint)
    trainer = make_trainer(pl, tmp_path, [epoch_end_recorder(pl, seen)], max_epochs=2)
    trainer.fit(make_module(pl), ckpt_path=checkpoint)
    assert seen == [(6, 6)]


# ---------------------------------------------------------------------------------------------------- ModelCheckpoint


def recording_checkpoint(pl: ModuleType, dirpath: Path, **options: Any) -> Any:
    """A ModelCheckpoint that saves every epoch (``save_top_k=-1``) and records which hook saved, what
    Lightning's own rule said in each of its hooks, and what `checkpoint_saves_at_train_epoch_end` said at
    ``on_train_start``."""

    class Recording(pl.callbacks.ModelCheckpoint):
        def __init__(self) -> None:
            super().__init__(dirpath=dirpath, filename="{epoch}-{step}", save_top_k=-1, **options)
            self.saved_in: list[str] = []
            self.rule: list[bool] = []
            self.ours: bool | None = None

        def on_train_start(self, trainer, pl_module) -> None:
            self.ours = checkpoint_saves_at_train_epoch_end(self, trainer)
            super().on_train_start(trainer, pl_module)

        def _record(self, hook: str, trainer, pl_module) -> None:
            files = set(dirpath.glob("*.ckpt"))
            getattr(super(), hook)(trainer, pl_module)
            if not trainer.sanity_checking:
                self.rule.append(self._should_save_on_train_epoch_end(trainer))
                if set(dirpath.glob("*.ckpt")) - files:
                    self.saved_in.append(hook)

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self._record("on_train_epoch_end", trainer, pl_module)

        def on_validation_end(self, trainer, pl_module) -> None:
            self._record("on_validation_end", trainer, pl_module)

    return Recording()


SAVE_SETUPS = {  # name → (how the module validates, Trainer options, ModelCheckpoint options)
    "no_validation_step": ("none", {}, {}),
    "no_validation_step_validation_every_2_epochs": ("none", {"check_val_every_n_epoch": 2}, {}),
    "no_validation_step_twice_per_epoch": ("none", {"val_check_interval": 0.5}, {}),
    "validation_every_epoch": ("loader", {}, {}),
    "validation_every_epoch_without_sanity_check": ("loader", {"num_sanity_val_steps": 0}, {}),
    "validation_every_epoch_at_validation_end": ("loader", {}, {"save_on_train_epoch_end": False}),
    "validation_every_2_epochs": ("loader", {"check_val_every_n_epoch": 2}, {}),
    "validation_every_2_epochs_at_epoch_end": (
        "loader",
        {"check_val_every_n_epoch": 2},
        {"save_on_train_epoch_end": True},
    ),
    "validation_every_2_steps_across_epochs": (
        "loader",
        {"check_val_every_n_epoch": None, "val_check_interval": 2},
        {},
    ),
    "validation_twice_per_epoch": ("loader", {"val_check_interval": 0.5}, {}),
    "validation_twice_per_epoch_without_sanity_check": (
        "loader",
        {"val_check_interval": 0.5, "num_sanity_val_steps": 0},
        {},
    ),
    "validation_twice_per_epoch_at_epoch_end": (
        "loader",
        {"val_check_interval": 0.5},
        {"save_on_train_epoch_end": True},
    ),
    "validation_twice_per_epoch_no_batches": ("loader", {"val_check_interval": 0.5, "limit_val_batches": 0}, {}),
    "validation_twice_per_epoch_no_loader": ("no_loader", {"val_check_interval": 0.5}, {}),
    "validation_twice_per_epoch_empty_loader": ("empty_loader", {"val_check_interval": 0.5}, {}),
    "validation_every_hour": ("loader", {"val_check_interval": timedelta(hours=1)}, {}),
}


@DISTRIBUTIONS
@pytest.mark.parametrize("setup", SAVE_SETUPS)
def test_checkpoint_saves_at_train_epoch_end(pl: ModuleType, setup: str, tmp_path: Path) -> None:
    """At ``on_train_start`` (where `check_metric_readers` runs) the answer is what Lightning's rule says in
    every one of ModelCheckpoint's saving hooks afterwards, and where it actually saves: at training-epoch end
    if true, only at validation end (if ever) if false."""
    validation, trainer_options, checkpoint_options = SAVE_SETUPS[setup]
    checkpoint = recording_checkpoint(pl, tmp_path / "checkpoints", **checkpoint_options)
    trainer = make_trainer(pl, tmp_path, [checkpoint], **trainer_options)
    trainer.fit(make_module(pl, validation))
    assert checkpoint.ours is not None and checkpoint.rule and set(checkpoint.rule) == {checkpoint.ours}
    if checkpoint.ours:
        assert checkpoint.saved_in == ["on_train_epoch_end"] * 2
    else:
        assert set(checkpoint.saved_in) <= {"on_validation_end"}


@DISTRIBUTIONS
def test_checkpoint_triggers(pl: ModuleType) -> None:
    """`checkpoint_every_n_epochs`, `checkpoint_every_n_train_steps` and `checkpoint_train_time_interval`: the
    constructor's three triggers as ModelCheckpoint resolves them (every epoch if none is given)."""
    ModelCheckpoint = pl.callbacks.ModelCheckpoint
    hour = timedelta(hours=1)
    for options, expected in [
        ({}, (1, 0, None)),
        ({"every_n_epochs": 3}, (3, 0, None)),
        ({"every_n_epochs": 0}, (0, 0, None)),
        ({"every_n_train_steps": 5}, (0, 5, None)),
        ({"train_time_interval": hour}, (0, 0, hour)),
    ]:
        callback = ModelCheckpoint(**options)
        triggers = (
            checkpoint_every_n_epochs(callback),
            checkpoint_every_n_train_steps(callback),
            checkpoint_train_time_interval(callback),
        )
        assert triggers == expected, options
        assert callback.every_n_epochs == expected[0]  # the public (read-only) view of the same value


@DISTRIBUTIONS
def test_align_checkpoint_schedule(pl: ModuleType, tmp_path: Path) -> None:
    """Aligning a checkpoint built with other settings makes it the checkpoint its constructor builds from the
    aligned ones: the same state key, and in a fit it saves in the same hook after the same epochs."""
    aligned = recording_checkpoint(pl, tmp_path / "aligned", every_n_epochs=1, save_on_train_epoch_end=False)
    align_checkpoint_schedule(aligned, save_on_train_epoch_end=True, every_n_epochs=2)
    built = recording_checkpoint(pl, tmp_path / "built", every_n_epochs=2, save_on_train_epoch_end=True)
    assert aligned.state_key == built.state_key
    assert checkpoint_every_n_epochs(aligned) == 2
    align_checkpoint_schedule(aligned)  # nothing given: nothing changes
    assert aligned.state_key == built.state_key
    for checkpoint in (aligned, built):
        trainer = make_trainer(pl, tmp_path, [checkpoint], max_epochs=4)
        trainer.fit(make_module(pl, "loader"))
        assert checkpoint.ours is True and set(checkpoint.rule) == {True}
        assert checkpoint.saved_in == ["on_train_epoch_end"] * 2
        assert sorted(path.name for path in Path(checkpoint.dirpath).glob("*.ckpt")) == [
            "epoch=1-step=6.ckpt",
            "epoch=3-step=12.ckpt",
        ]


# ---------------------------------------------------------------------------------------------------- EarlyStopping


EARLY_STOPPING_SETUPS = {  # name → (check_on_train_epoch_end given, Trainer options, resolved value)
    "default": (None, {}, True),
    "validation_every_2_epochs": (None, {"check_val_every_n_epoch": 2}, False),
    "validation_twice_per_epoch": (None, {"val_check_interval": 0.5}, False),
    "given_true": (True, {"check_val_every_n_epoch": 2}, True),
    "given_false": (False, {}, False),
}


@DISTRIBUTIONS
@pytest.mark.parametrize("setup", EARLY_STOPPING_SETUPS)
def test_early_stopping_checks_on_train_epoch_end(pl: ModuleType, setup: str, tmp_path: Path) -> None:
    """The constructor's value, or (``None``) the one ``setup`` resolves; true means the check runs at
    training-epoch end: without validation, an EarlyStopping on a worsening training metric stops the fit
    after two epochs if true and never if false."""
    given, trainer_options, resolved = EARLY_STOPPING_SETUPS[setup]
    stopping = pl.callbacks.EarlyStopping("epoch_value", mode="min", patience=0, check_on_train_epoch_end=given)
    assert early_stopping_checks_on_train_epoch_end(stopping) is bool(given)  # before setup: as given
    after_setup: list[bool] = []

    class Record(pl.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            after_setup.append(early_stopping_checks_on_train_epoch_end(stopping))

    trainer = make_trainer(pl, tmp_path, [stopping, Record()], max_epochs=4, **trainer_options)
    trainer.fit(make_module(pl))
    assert after_setup == [resolved]
    assert trainer.current_epoch == (2 if resolved else 4)


# ---------------------------------------------------------------------------------------------------- TensorBoard


@DISTRIBUTIONS
def test_tensorboard_file_writer(pl: ModuleType, tmp_path: Path) -> None:
    """The TensorBoardLogger's experiment has the file writer whose ``add_summary`` writes a summary into the
    run's event file (what `TensorBoardAdapter.declare_final` writes its HParams summaries with), recreated
    after the experiment was closed."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard.summary import hparams

    logger = pl.loggers.TensorBoardLogger(tmp_path, name="tb", version=0)
    experiment, session_start, _ = hparams({"lr": 0.1}, {"final/accuracy": 0.0})
    writer = tensorboard_file_writer(logger.experiment)
    writer.add_summary(experiment, 0)
    writer.add_summary(session_start, 0)
    logger.experiment.close()
    writer = tensorboard_file_writer(logger.experiment)  # closed: a new writer
    writer.add_summary(hparams({"lr": 0.1}, {"final/accuracy": 0.0})[0], 1)
    writer.flush()
    events = EventAccumulator(logger.log_dir).Reload()
    plugins = events.PluginTagToContent("hparams")
    assert sorted(plugins) == ["_hparams_/experiment", "_hparams_/session_start_info"]


# ---------------------------------------------------------------------------------------------------- the rules


def private_accesses(path: Path) -> list[str]:
    """``obj._name`` (``obj`` not ``self``/``cls``) and ``getattr/setattr/hasattr/delattr(obj, "_name")`` in one
    module, dunders left out."""

    def private(name: object) -> bool:
        return isinstance(name, str) and name.startswith("_") and not name.startswith("__")

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and private(node.args[1].value)
        ):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    return found


# ---------------------------------------------------------------------------------------------------- samplers


@DISTRIBUTIONS
def test_user_sampler(pl: ModuleType) -> None:
    """Behind the wrapper Lightning puts around a custom sampler under DDP (its fabric package's
    ``DistributedSamplerWrapper``) is the user's ``WeightedRandomSampler``; other samplers come back as they are."""
    fabric = importlib.import_module("lightning.fabric" if pl.__name__ == "lightning" else "lightning_fabric")
    weighted = torch.utils.data.WeightedRandomSampler([0.5, 2.0, 1.0, 0.0], num_samples=4)
    wrapped = fabric.utilities.distributed.DistributedSamplerWrapper(weighted, num_replicas=2, rank=1, shuffle=False)
    assert user_sampler(wrapped) is weighted
    assert user_sampler(weighted) is weighted
    sequential = torch.utils.data.SequentialSampler(range(3))
    assert user_sampler(sequential) is sequential
    assert user_sampler(None) is None


def test_help_formatter_hiding() -> None:
    """jsonargparse's help formatter still has argparse's ``_get_help_string`` hook and appends its "known
    subclasses" list there: the subclass drops exactly the hidden class paths from it."""
    import argparse

    from jsonargparse import DefaultHelpFormatter

    assert callable(getattr(DefaultHelpFormatter, "_get_help_string", None))
    formatter = help_formatter_hiding(DefaultHelpFormatter, frozenset({"pkg.Base", "other.Last"}))(prog="x")
    listed = "callbacks (known subclasses: pkg.Base, pkg.Real, other.Thing, other.Last)"
    action = argparse.Action(["--c"], "c", default=None, help=listed)
    shown = formatter._get_help_string(action)
    assert shown.startswith("callbacks (known subclasses: pkg.Real, other.Thing)")
    assert shown.removeprefix("callbacks (known subclasses: pkg.Real, other.Thing)") == (
        DefaultHelpFormatter(prog="x")._get_help_string(action).removeprefix(listed)  # what follows is jsonargparse's
    )
    plain = argparse.Action(["--d"], "d", help="no list here")
    assert formatter._get_help_string(plain) == DefaultHelpFormatter(prog="x")._get_help_string(plain)


def test_autograd_function_class() -> None:
    """A custom Function's graph node names its class; torch's own operations have none."""

    class Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    x = torch.ones(3, requires_grad=True)
    assert autograd_function_class(Square.apply(x).grad_fn) is Square
    assert autograd_function_class((x * 2).grad_fn) is None


def test_no_other_module_touches_a_private_attribute_of_another_object() -> None:
    internals = Path(lightning_internals.__file__).resolve()
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if path != internals for hit in private_accesses(path)]
    assert found == []
    assert private_accesses(internals)  # the scan does see the accesses where they are


def test_the_internals_module_imports_no_lightning_torchmetrics_or_torch() -> None:
    """Loaded on its own in a fresh interpreter, it imports none of them (so the Lightning-free
    `lightning_stability.dynamics` may use it)."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('internals', {str(lightning_internals.__file__)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in "
        "('lightning', 'pytorch_lightning', 'lightning_fabric', 'torchmetrics', 'torch')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
