"""EarlyStopping and ModelCheckpoint on the monitor's metrics (issue 13): the recipes of docs/guide.md's section
"Stopping and checkpointing on the monitor's metrics" run verbatim on a scripted healthy and a scripted unstable
run, with and without a validation loop; every setup that would read a stale value fails at fit start, before
the first training step, with the fix in the message.

The scripted runs are those of `test_stability_instability` (three groups of one-hot inputs, a bias-free linear
layer whose weights the module sets at each epoch start, SGD with lr = 0), so each check's margins, accuracy and
events are known by hand.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from lightning_stability import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor, StabilityMonitor
from lightning_stability.callbacks.metric_readers import check_metric_readers, metric_owner
from lightning_stability.distributions import MisconfigurationError

from .test_stability_instability import GROUP_SIZES, NUM_CLASSES, SCRIPT, dataset

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
SECTION = "## Stopping and checkpointing on the monitor's metrics"

# accuracy 1 throughout and every margin grows: the loss falls at every check, no event is possible
HEALTHY = {epoch: (2.0 + epoch, 2.0 + epoch, 1.0 + epoch) for epoch in range(-1, 12)}
UNSTABLE = SCRIPT  # events at epochs 1, 3 and 4 (3 and 4 consecutive); kept at epoch 5's weights afterwards


def guide_recipes() -> dict[str, str]:
    """The section's ```python blocks, keyed by the Lightning callback each one builds."""
    text = GUIDE.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    blocks = re.findall(r"^```python\n(.*?)^```", text[start:end], re.DOTALL | re.MULTILINE)
    recipes = {kind: block for block in blocks for kind in ("EarlyStopping", "ModelCheckpoint") if kind + "(" in block}
    assert sorted(recipes) == ["EarlyStopping", "ModelCheckpoint"] and len(blocks) == 2
    return recipes


def weight_for(script: dict, epoch: int) -> torch.Tensor:
    """Group g's logits: its scripted margin on its class, 0 elsewhere (see test_stability_instability)."""
    margins = script[min(epoch, max(script))]
    weight = torch.zeros(NUM_CLASSES, len(GROUP_SIZES))
    for group, margin in enumerate(margins):
        weight[group, group] = margin
    return weight


class ScriptedBehaviour:
    """Sets its own scripted weights at each epoch start (lr = 0 keeps them), so a recipe's own Trainer runs it.
    Mixed into either distribution's LightningModule by `ScriptedModule`."""

    def __init__(self, script: dict) -> None:
        super().__init__()
        self.script = script
        self.linear = nn.Linear(len(GROUP_SIZES), NUM_CLASSES, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(weight_for(script, -1))
        self.training_steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def training_step(self, batch, batch_idx) -> torch.Tensor:
        self.training_steps += 1
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def on_train_epoch_start(self) -> None:
        with torch.no_grad():
            self.linear.weight.copy_(weight_for(self.script, self.current_epoch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


class Validated:
    def validation_step(self, batch, batch_idx) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=50)


class TrainingData:
    def __init__(self) -> None:
        super().__init__()
        self.dataset = dataset()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=25, shuffle=True)


def ScriptedModule(script: dict, validation: bool, distribution=pl):
    """The scripted classifier as a LightningModule of ``distribution``, with a validation step if asked."""
    bases = (Validated, ScriptedBehaviour) if validation else (ScriptedBehaviour,)
    return type("ScriptedModule", (*bases, distribution.LightningModule), {})(script)


def ScriptedData(validation: bool, distribution=pl):
    """The scripted samples as a LightningDataModule of ``distribution``, with a validation loader if asked."""
    bases = (Validated, TrainingData) if validation else (TrainingData,)
    return type("ScriptedData", (*bases, distribution.LightningDataModule), {})()


def run_recipe(
    kind: str,
    script: dict,
    validation: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    distribution=pl,
) -> dict:
    """Execute the guide's recipe verbatim with ``model`` and ``dm`` bound to a scripted run; its namespace. With
    ``distribution=lightning.pytorch`` the recipe's imports name that package instead (nothing else changes).

    A `Recorder` is attached to the recipe's monitor (by wrapping the class) so that each check's metrics are known."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path)
    records: list[dict] = []

    class RecordedMonitor(StabilityMonitor):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            before = self.checks_done
            super().on_train_epoch_end(trainer, pl_module)
            if self.checks_done > before:
                records.append({"epoch": trainer.current_epoch, **self.last_metrics})

    monkeypatch.setattr("lightning_stability.StabilityMonitor", RecordedMonitor)
    model, dm = ScriptedModule(script, validation, distribution), ScriptedData(validation, distribution)
    code = guide_recipes()[kind]
    if distribution is not pl:
        code = code.replace("from pytorch_lightning", f"from {distribution.__name__}")
    namespace = {"__name__": "__recipe__", "model": model, "dm": dm}
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        exec(compile(code, f"docs/guide.md ({kind})", "exec"), namespace)
    assert not [w for w in warned if "now saves" in str(w.message)], "the recipe needed aligning"
    namespace["records"] = records
    return namespace


@pytest.mark.parametrize("validation", [False, True], ids=["no_val", "val"])
def test_early_stopping_recipe_stops_after_two_consecutive_events_and_never_on_a_healthy_run(
    validation: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = run_recipe("EarlyStopping", HEALTHY, validation, tmp_path / "healthy", monkeypatch)
    trainer = healthy["trainer"]
    assert trainer.current_epoch == 12 and healthy["early_stopping"].stopped_epoch == 0
    # the check before training (check_at_start, the default) is the first stable check
    assert [r["stability_events/stable_checks"] for r in healthy["records"]] == list(range(2, 14))

    unstable = run_recipe("EarlyStopping", UNSTABLE, validation, tmp_path / "unstable", monkeypatch)
    records = unstable["records"]
    # by hand from the script: events at epochs 1, 3, 4; EarlyStopping's patience 2 is reached at epoch 4
    assert [r["stability_events/instability"] for r in records] == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert [r["stability_events/stable_checks"] for r in records] == [2.0, 2.0, 3.0, 3.0, 3.0]
    assert unstable["early_stopping"].stopped_epoch == 4 and unstable["trainer"].current_epoch == 5

    # the same stop as the monitor's own rule with the same patience
    own = StabilityMonitor(stop_on_instability=True, patience=2)
    own_trainer = pl.Trainer(
        max_epochs=12, callbacks=[own], logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    with pytest.warns(UserWarning, match="StabilityMonitor: instability at epoch"):
        own_trainer.fit(ScriptedModule(UNSTABLE, validation), datamodule=ScriptedData(validation))
    assert own_trainer.current_epoch == unstable["trainer"].current_epoch and own.instability_epochs == [1, 3, 4]


@pytest.mark.parametrize("validation", [False, True], ids=["no_val", "val"])
@pytest.mark.parametrize("script", [HEALTHY, UNSTABLE], ids=["healthy", "unstable"])
def test_checkpoint_recipe_ranks_only_checked_epochs_by_their_own_check(
    script: dict, validation: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = run_recipe("ModelCheckpoint", script, validation, tmp_path, monkeypatch)
    checkpoint, records = namespace["best_certified"], namespace["records"]
    assert [r["epoch"] for r in records] == [1, 3, 5]
    floors = {r["epoch"]: r["stability/theorem_a/floor"] for r in records}
    best_epoch = max(floors, key=lambda epoch: (floors[epoch], -epoch))  # ModelCheckpoint keeps the first best
    # the checkpoint of a checked epoch, ranked by that check's floor (not a neighbour's)
    assert Path(checkpoint.best_model_path).name == f"epoch={best_epoch}-certified.ckpt"
    assert float(checkpoint.best_model_score) == pytest.approx(floors[best_epoch], rel=1e-6)
    saved = torch.load(checkpoint.best_model_path, weights_only=False)
    assert saved["epoch"] == best_epoch
    assert torch.equal(saved["state_dict"]["linear.weight"], weight_for(script, best_epoch))
    if script is HEALTHY:  # the floors rise with the margins: the last check is the best
        assert best_epoch == 5 and floors[1] < floors[3] < floors[5]


def test_the_recipes_with_import_lightning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lightning_pytorch = pytest.importorskip("lightning.pytorch")
    stopped = run_recipe("EarlyStopping", UNSTABLE, True, tmp_path / "stop", monkeypatch, lightning_pytorch)
    assert type(stopped["trainer"]).__module__.startswith("lightning.pytorch")
    assert stopped["early_stopping"].stopped_epoch == 4
    ranked = run_recipe("ModelCheckpoint", HEALTHY, True, tmp_path / "rank", monkeypatch, lightning_pytorch)
    assert Path(ranked["best_certified"].best_model_path).name == "epoch=5-certified.ckpt"
    lightning_callbacks = pytest.importorskip("lightning.pytorch.callbacks")
    early_stopping = lightning_callbacks.EarlyStopping("stability_events/stable_checks", check_on_train_epoch_end=False)
    trainer = lightning_pytorch.Trainer(max_epochs=2, callbacks=[StabilityMonitor(), early_stopping], logger=False)
    with pytest.raises(MisconfigurationError, match="runs at validation end"):
        trainer.fit(ScriptedModule(HEALTHY, True, lightning_pytorch), datamodule=ScriptedData(True, lightning_pytorch))


# ------------------------------------------------------------------ setups refused at fit start, with the fix


def fit_refused(callbacks: list, validation: bool = True, **trainer_options) -> str:
    module = ScriptedModule(HEALTHY, validation)
    trainer = pl.Trainer(
        max_epochs=4,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        **trainer_options,
    )
    with pytest.raises(MisconfigurationError) as raised:
        trainer.fit(module, datamodule=ScriptedData(validation))
    assert module.training_steps == 0, "refused only after training started"
    return str(raised.value)


@pytest.mark.parametrize(
    ("options", "trainer_options"),
    [({"check_on_train_epoch_end": False}, {}), ({}, {"check_val_every_n_epoch": 2})],
    ids=["asked", "lightning_default_with_validation_every_2_epochs"],
)
def test_early_stopping_at_validation_end_is_refused(options: dict, trainer_options: dict) -> None:
    early_stopping = EarlyStopping("stability_events/stable_checks", mode="max", **options)
    message = fit_refused([StabilityMonitor(), early_stopping], **trainer_options)
    assert "EarlyStopping(monitor='stability_events/stable_checks') runs at validation end" in message
    assert "check_on_train_epoch_end=True" in message and "docs/guide.md" in message


def test_early_stopping_listed_before_the_monitor_is_refused() -> None:
    message = fit_refused([EarlyStopping("stability_events/stable_checks", mode="max"), StabilityMonitor()])
    assert "is listed before StabilityMonitor" in message and "list it after StabilityMonitor" in message


def test_early_stopping_with_a_monitor_checking_every_second_epoch_is_refused() -> None:
    message = fit_refused([StabilityMonitor(every_n_epochs=2), EarlyStopping("stability/accuracy", mode="max")])
    assert "StabilityMonitor checks every 2 epochs" in message and "stop_on_instability=True" in message


def test_a_checkpoint_saving_mid_epoch_is_refused() -> None:
    checkpoint = ModelCheckpoint(monitor="stability/theorem_a/floor", mode="max", every_n_train_steps=5)
    message = fit_refused([StabilityMonitor(every_n_epochs=2), checkpoint])
    assert message.startswith("StabilityMonitor: ModelCheckpoint(monitor='stability/theorem_a/floor')")
    assert "every n training steps or on a timer" in message


TRAINER_SETUPS = {  # how validation runs → whether ModelCheckpoint would save at validation end by itself
    "no_validation": ({}, False),
    # Lightning's rule: validation every second epoch → save at validation end, which never runs here
    "no_validation_check_val_every_2_epochs": ({"check_val_every_n_epoch": 2}, False),
    "validation_every_epoch": ({}, True),
    "validation_every_2_epochs": ({"check_val_every_n_epoch": 2}, True),
    "validation_twice_per_epoch": ({"val_check_interval": 0.5}, True),
}


@pytest.mark.parametrize("setup", TRAINER_SETUPS)
@pytest.mark.parametrize("script", [HEALTHY, UNSTABLE], ids=["healthy", "unstable"])
def test_a_checkpoint_written_as_users_write_it_ranks_only_checked_epochs(
    setup: str, script: dict, tmp_path: Path
) -> None:
    """Issue 13's case: ``ModelCheckpoint(monitor="stability/theorem_a/floor", mode="max")`` with a monitor that
    checks every second epoch neither fails nor ranks a checkpoint by another epoch's check."""
    trainer_options, validation = TRAINER_SETUPS[setup]
    monitor = StabilityMonitor(every_n_epochs=2)
    checkpoint = ModelCheckpoint(tmp_path, monitor="stability/theorem_a/floor", mode="max", save_top_k=-1)
    trainer = pl.Trainer(
        max_epochs=6, callbacks=[monitor, checkpoint], logger=False, enable_progress_bar=False, **trainer_options
    )
    floors: dict[int, float] = {}

    class Record(pl.Callback):  # after the monitor: the value its check just logged
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if monitor.last_checked_epoch == trainer.current_epoch:
                floors[trainer.current_epoch] = monitor.last_metrics["stability/theorem_a/floor"]

    trainer.callbacks.insert(trainer.callbacks.index(monitor) + 1, Record())
    # the unstable script also warns its events, and the scripted margins of 0 (ties); pytest.warns re-emits (here:
    # fails on) the warnings it does not match
    with pytest.warns(
        UserWarning, match="now saves|StabilityMonitor: instability at epoch|margins are exactly 0"
    ) as warned:
        trainer.fit(ScriptedModule(script, validation), datamodule=ScriptedData(validation))
    assert sum("now saves" in str(w.message) for w in warned) == 1
    assert sorted(floors) == [1, 3, 5]
    saved = {int(path.name.split("-")[0].removeprefix("epoch=")): path for path in tmp_path.glob("*.ckpt")}
    assert sorted(saved) == [1, 3, 5]  # only checked epochs
    for epoch, path in saved.items():  # each ranked by the check of its own weights
        assert float(checkpoint.best_k_models[str(path)]) == pytest.approx(floors[epoch], rel=1e-6)
        assert torch.equal(
            torch.load(path, weights_only=False)["state_dict"]["linear.weight"], weight_for(script, epoch)
        )
    best = max(floors, key=lambda epoch: (floors[epoch], -epoch))
    assert Path(checkpoint.best_model_path) == saved[best]


def test_checkpoint_on_a_multiple_of_the_schedule_and_on_other_metrics_are_accepted(tmp_path: Path) -> None:
    """every_n_epochs = 4 with checks every 2 epochs saves only checked epochs; readers of metrics the monitor does
    not log (val_loss, another monitor's) are none of its business."""
    monitor = StabilityMonitor(every_n_epochs=2)
    callbacks = [
        monitor,
        ModelCheckpoint(
            tmp_path, monitor="stability/accuracy", mode="max", every_n_epochs=4, save_on_train_epoch_end=True
        ),
        ModelCheckpoint(tmp_path / "val", monitor="val_loss"),
        EarlyStopping("val_loss", patience=100),
    ]
    trainer = pl.Trainer(max_epochs=4, callbacks=callbacks, logger=False, enable_progress_bar=False)
    with pytest.warns(UserWarning, match="margins are exactly 0"):  # the scripted start has ties
        trainer.fit(ScriptedModule(HEALTHY, True), datamodule=ScriptedData(True))
    assert monitor.checks_done == 3 and sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["epoch=3-step=16.ckpt"]


@pytest.mark.parametrize("metric", ["stability_diagnostics/theorem_a/eta", "stability_cost/pass_seconds"])
def test_a_reader_of_a_metric_sent_to_the_loggers_only_is_refused(metric: str) -> None:
    """Diagnostics and cost go straight to the loggers (one call per check), never to callback_metrics: an
    EarlyStopping or ModelCheckpoint on them would fail after the first epoch with "metric not available"."""
    for reader in (EarlyStopping(metric, mode="max"), ModelCheckpoint(monitor=metric, mode="max")):
        message = fit_refused([StabilityMonitor(), reader], validation=False)
        assert message.startswith(f"StabilityMonitor: {type(reader).__name__}(monitor={metric!r}) reads a metric")
        assert "loggers only" in message and "StabilityMonitor.last_metrics" in message


def test_each_metric_has_the_monitor_of_its_longest_prefix_as_owner() -> None:
    """`metric_owner`: the dynamics monitors' names lie under the StabilityMonitor's ``stability/``; the longest
    prefix decides, in whatever order the monitors come. The names are ones the monitors log."""
    stability, sharpness = StabilityMonitor(), SharpnessMonitor()
    parametrization, gradient_flow = ParametrizationMonitor(), GradientFlowMonitor()
    monitors = [stability, sharpness, parametrization, gradient_flow]
    names = {
        "stability/accuracy": stability,
        "stability/theorem_a/floor": stability,
        "stability_events/stable_checks": stability,
        "stability_diagnostics/loss_upper": stability,
        "stability_estimate/accuracy_lower": stability,
        "stability/sharpness/lr_lambda_over_2": sharpness,
        "stability/sharpness/lambda_max": sharpness,
        "stability/parametrization/layer0/dead_fraction": parametrization,
        "stability/gradient_flow/first_last_ratio": gradient_flow,
        "stability/gradient_flow/norm/layer1": gradient_flow,
        "val_loss": None,
    }
    for name, owner in names.items():
        assert metric_owner(name, monitors) is owner, name
        assert metric_owner(name, monitors[::-1]) is owner, name
    # without the dynamics monitors, the StabilityMonitor's prefix is the only one that starts these names
    assert metric_owner("stability/accuracy", [stability]) is stability
    assert metric_owner("stability/sharpness/lambda_max", [stability]) is stability
    assert metric_owner("val_loss", [stability]) is None and metric_owner("stability/accuracy", []) is None
    # a tie needs two monitors declaring the same prefix (two of one class): the first owns the name
    other = StabilityMonitor(every_n_epochs=2)
    assert metric_owner("stability/accuracy", [other, stability]) is other


def test_every_monitor_class_declares_its_own_prefixes_none_shared() -> None:
    classes = (StabilityMonitor, SharpnessMonitor, ParametrizationMonitor, GradientFlowMonitor)
    declared = [prefix for cls in classes for prefix in vars(cls)["metric_prefixes"]]
    assert len(declared) == len(set(declared)) and all(prefix.endswith("/") for prefix in declared)


@pytest.mark.parametrize(
    "metric", ["stability/sharpness/lr_lambda_over_2", "stability/parametrization/layer0/dead_fraction"]
)
def test_a_dynamics_monitors_metric_is_not_the_stability_monitors_even_without_that_monitor(metric: str) -> None:
    """A reader of ``stability/sharpness/…`` (at validation end, which the StabilityMonitor refuses for its own
    metrics) is the SharpnessMonitor's business, also when the Trainer has none: the StabilityMonitor lets it be."""
    stability = StabilityMonitor()
    mine = EarlyStopping("stability/accuracy", mode="max", check_on_train_epoch_end=False)
    with pytest.raises(MisconfigurationError, match="runs at validation end"):
        check_metric_readers(SimpleNamespace(callbacks=[stability, mine]), stability)  # type: ignore[arg-type]
    for others in ([], [GradientFlowMonitor()]):
        reader = EarlyStopping(metric, mode="max", check_on_train_epoch_end=False)
        check_metric_readers(SimpleNamespace(callbacks=[stability, *others, reader]), stability)  # type: ignore[arg-type]


def test_a_sharpness_metric_read_between_its_checks_is_refused() -> None:
    early_stopping = EarlyStopping("stability/sharpness/lr_lambda_over_2", mode="min")
    message = fit_refused([SharpnessMonitor(every_n_epochs=3), early_stopping], validation=False)
    assert message.startswith("SharpnessMonitor: EarlyStopping(monitor='stability/sharpness/lr_lambda_over_2')")


def test_in_the_statistical_mode_checkpoints_follow_the_checks_that_log_their_metric(tmp_path: Path) -> None:
    """Exact values come from the full checks only (every 2nd epoch here), estimates from the subset checks: a
    checkpoint on an exact floor is aligned with the full checks; one on an estimate, logged at irregular
    epochs when full checks are scheduled, is refused."""
    monitor = StabilityMonitor(subset_size=40, full_every_n_epochs=2)
    exact = ModelCheckpoint(tmp_path, monitor="stability/theorem_a/floor", mode="max", save_top_k=-1)
    trainer = pl.Trainer(max_epochs=4, callbacks=[monitor, exact], logger=False, enable_progress_bar=False)
    with pytest.warns(UserWarning, match="now saves|margins are exactly 0"):  # the scripted start has ties
        trainer.fit(ScriptedModule(HEALTHY, False), datamodule=ScriptedData(False))
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("*.ckpt")) == ["epoch=1", "epoch=3"]

    estimate = ModelCheckpoint(tmp_path / "estimate", monitor="stability_estimate/accuracy_lower", mode="max")
    message = fit_refused([StabilityMonitor(subset_size=40, full_every_n_epochs=2), estimate], validation=False)
    assert "does not log after a fixed number of epochs" in message and "full_every_n_epochs=2" in message
    # without full checks the estimates come after every check, and a checkpoint on them is fine
    only_estimates = ModelCheckpoint(tmp_path / "only", monitor="stability_estimate/accuracy_lower", mode="max")
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[StabilityMonitor(subset_size=40), only_estimates],
        logger=False,
        enable_progress_bar=False,
    )
    trainer.fit(ScriptedModule(HEALTHY, False), datamodule=ScriptedData(False))
    assert Path(only_estimates.best_model_path).exists()
