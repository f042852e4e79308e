"""Instability events and the stop on a scripted loss-down / accuracy-down sequence (docs/theory.md §8)."""

from __future__ import annotations

import logging
import math
from fractions import Fraction

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_stability import StabilityMonitor

from ..helpers import SMALL_GRID, Recorder, epoch_checkpoints, fit
from .metric_oracles import canonical

# Three groups of samples; the input of a sample is the one-hot code of its group, so a bias-free linear layer
# gives every group its own logit vector. Group g has class g: 40, 40 and 20 samples.
GROUP_SIZES = (40, 40, 20)
NUM_CLASSES = 3
# The margin of each group at each check. Group 2 is badly misclassified and dominates the loss: the scripted
# "training" lowers the loss by pulling it in while other groups cross to the wrong side (the regime of docs/theory.md §5).
SCRIPT: dict[int, tuple[float, float, float]] = {
    -1: (1.0, 1.0, -8.0),  # start: accuracy 0.8
    0: (2.0, 2.0, -8.0),  # loss falls, accuracy stays 0.8: no event
    1: (-0.1, 2.0, -4.0),  # loss falls, accuracy 0.8 -> 0.4: event
    2: (2.0, 2.0, -4.0),  # loss falls, accuracy 0.4 -> 0.8: no event (the consecutive count resets)
    3: (2.0, -0.1, -1.0),  # loss falls, accuracy 0.8 -> 0.4: event
    4: (-0.01, -0.01, 3.0),  # loss falls, accuracy 0.4 -> 0.2: event (2nd consecutive)
    5: (3.0, 3.0, 3.0),  # loss falls, accuracy 1.0
}
MAX_EPOCHS = 6


def dataset() -> TensorDataset:
    groups = torch.cat([torch.full((size,), g) for g, size in enumerate(GROUP_SIZES)])
    return TensorDataset(nn.functional.one_hot(groups, len(GROUP_SIZES)).float(), groups)


def weight_for(check: int) -> torch.Tensor:
    """Column g: the logits of group g, ``margin`` on its class and 0 elsewhere, so its margin is ``margin``."""
    weight = torch.zeros(NUM_CLASSES, len(GROUP_SIZES))
    for group, margin in enumerate(SCRIPT[check]):
        weight[group, group] = margin
    return weight


def scripted_loss_and_accuracy(check: int) -> tuple[float, float]:
    """By hand, from the script (docs/theory.md §1): group g's logits are ``m`` (its margin, rounded to the float32
    the linear layer holds) on its class and 0 on the other K − 1, so each of its samples has the margin ``m`` and
    the cross entropy ``log(e^m + K − 1) − m = log(1 + (K − 1) e^{−m})``; it is correct iff ``m > 0``."""
    margins = [float(np.float32(m)) for m in SCRIPT[check]]
    n = sum(GROUP_SIZES)
    loss = math.fsum(size * math.log1p((NUM_CLASSES - 1) * math.exp(-m)) for size, m in zip(GROUP_SIZES, margins)) / n
    accuracy = Fraction(sum(size for size, m in zip(GROUP_SIZES, margins) if m > 0), n)
    return loss, float(accuracy)


def instability_rule(earlier: tuple[float, float], later: tuple[float, float], tol: float = 0.0) -> bool:
    """docs/theory.md §8: the loss fell and the accuracy fell by more than ``tol``."""
    return later[0] < earlier[0] and later[1] < earlier[1] - tol


class ScriptedClassifier(pl.LightningModule):
    """A linear classifier whose training steps (SGD with lr = 0) change nothing: `Script` sets its weights. Its
    first ``len(GROUP_SIZES)`` inputs are a sample's group as a one-hot code; more inputs (``in_features``) get
    weight 0 from the script, so the scripted margins hold exactly."""

    def __init__(self, in_features: int = len(GROUP_SIZES)) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, NUM_CLASSES, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def training_step(self, batch, batch_idx) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


class Script(pl.Callback):
    """Ordered before the monitor: sets the weights the monitor will check at train start and at each epoch end."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def _set(self, module: pl.LightningModule, check: int) -> None:
        with torch.no_grad():
            module.linear.weight.copy_(weight_for(check))

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 0:
            self._set(pl_module, -1)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epochs.append(trainer.current_epoch)
        self._set(pl_module, trainer.current_epoch)


class AssertScripted(pl.Callback):
    """Ordered after the monitor: the training steps left the scripted weights alone."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        assert torch.equal(pl_module.linear.weight, weight_for(trainer.current_epoch))


def fit_scripted(monitor: StabilityMonitor, tmp_path=None, ckpt_path=None, checkpoint: bool = False):
    script, recorder = Script(), Recorder(monitor)
    callbacks: list[pl.Callback] = [script, monitor, recorder, AssertScripted()]
    if checkpoint:
        callbacks.append(epoch_checkpoints(tmp_path))
    trainer = fit(
        callbacks,
        ScriptedClassifier(),
        dataset(),
        batch_size=25,
        ckpt_path=ckpt_path,
        max_epochs=MAX_EPOCHS,
        enable_checkpointing=checkpoint,
    )
    return trainer, script, recorder


def test_the_script_is_a_loss_down_accuracy_down_sequence() -> None:
    values = [scripted_loss_and_accuracy(check) for check in range(-1, MAX_EPOCHS)]
    assert [a for _, a in values] == pytest.approx([0.8, 0.8, 0.4, 0.8, 0.4, 0.2, 1.0])
    assert all(later[0] < earlier[0] for earlier, later in zip(values, values[1:])), "the loss falls at every check"
    events = [instability_rule(earlier, later) for earlier, later in zip(values, values[1:])]
    assert events == [False, True, False, True, True, False]
    # with tol = 0.3 the 0.4 -> 0.2 drop does not count (test_tol_ignores_small_accuracy_drops)
    with_tol = [instability_rule(earlier, later, tol=0.3) for earlier, later in zip(values, values[1:])]
    assert with_tol == [False, True, False, True, False, False]


@pytest.mark.parametrize(
    ("stop", "patience", "tol", "last_epoch", "flags"),
    [
        (True, 2, 0.0, 4, [0, 0, 1, 0, 1, 1]),  # events at epochs 1, 3, 4: the 2nd consecutive one stops
        (True, 1, 0.0, 1, [0, 0, 1]),  # the first event stops
        (False, 1, 0.0, 5, [0, 0, 1, 0, 1, 1, 0]),  # events are counted but never stop
    ],
    ids=["patience2", "patience1", "no_stop"],
)
def test_instability_events_and_stop(
    caplog, stop: bool, patience: int, tol: float, last_epoch: int, flags: list[int]
) -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, stop_on_instability=stop, patience=patience, tol=tol)
    with caplog.at_level(logging.INFO), pytest.warns(UserWarning, match="StabilityMonitor: instability") as warned:
        trainer, script, recorder = fit_scripted(monitor)

    assert script.epochs == list(range(last_epoch + 1)), "training must stop right after the stopping check"
    assert [canonical(r["metrics"])["check_epoch"] for r in recorder.records] == list(range(-1, last_epoch + 1))
    assert [canonical(r["metrics"])["instability"] for r in recorder.records] == flags
    counts = [r["instability_count"] for r in recorder.records]
    assert counts == [sum(flags[: i + 1]) for i in range(len(flags))]
    assert [canonical(r["metrics"])["instability_count"] for r in recorder.records] == counts
    assert monitor.instability_count == sum(flags)
    assert trainer.callback_metrics["stability/instability_count"] == sum(flags)
    for record, check in zip(recorder.records, range(-1, last_epoch + 1)):
        loss, accuracy = scripted_loss_and_accuracy(check)
        assert canonical(record["metrics"])["loss"] == pytest.approx(loss, rel=1e-12)
        assert canonical(record["metrics"])["accuracy"] == pytest.approx(accuracy, rel=1e-12, abs=1e-15)
        assert canonical(record["metrics"])["loss_rose"] == 0.0

    messages = [str(w.message) for w in warned if "StabilityMonitor: instability" in str(w.message)]
    event_epochs = [epoch for epoch, flag in zip(range(-1, last_epoch + 1), flags) if flag]
    assert [m.split(":")[1].strip() for m in messages] == [f"instability at epoch {e}" for e in event_epochs]

    assert trainer.should_stop is stop
    if stop:
        loss_before, accuracy_before = scripted_loss_and_accuracy(last_epoch - 1)
        loss_after, accuracy_after = scripted_loss_and_accuracy(last_epoch)
        reason = monitor.stop_reason
        assert reason == (
            f"instability at epoch {last_epoch}: the training loss fell ({loss_before:.6g} -> {loss_after:.6g}) "
            f"while the training accuracy fell ({accuracy_before:.6g} -> {accuracy_after:.6g}, tol 0); "
            f"{patience} consecutive event(s), patience {patience}"
        )
        assert f"[StabilityMonitor] stopping training: {reason}" in caplog.text
        assert monitor.consecutive_instabilities == patience
    else:
        assert monitor.stop_reason is None
        assert "stopping training" not in caplog.text


def test_tol_ignores_small_accuracy_drops() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, stop_on_instability=True, patience=2, tol=0.3)
    with pytest.warns(UserWarning, match="StabilityMonitor: instability"):
        trainer, script, recorder = fit_scripted(monitor)
    # 0.8 -> 0.4 drops count, 0.4 -> 0.2 does not: never two in a row
    assert [canonical(r["metrics"])["instability"] for r in recorder.records] == [0, 0, 1, 0, 1, 0, 0]
    assert script.epochs == list(range(MAX_EPOCHS)) and not trainer.should_stop
    assert monitor.instability_count == 2 and monitor.stop_reason is None


def test_instability_counters_survive_resume(tmp_path) -> None:
    """The consecutive count lives in the checkpoint: resumed after epoch 3's event, epoch 4's event stops."""
    monitor = StabilityMonitor(grid=SMALL_GRID, stop_on_instability=True, patience=2)
    with pytest.warns(UserWarning, match="StabilityMonitor: instability at epoch") as warned:
        fit_scripted(monitor, tmp_path / "full", checkpoint=True)
    messages = [str(w.message) for w in warned if "StabilityMonitor: instability" in str(w.message)]
    assert [m.split(":")[1].strip() for m in messages] == [f"instability at epoch {e}" for e in (1, 3, 4)]
    assert monitor.stop_reason.startswith("instability at epoch 4")

    resumed = StabilityMonitor(grid=SMALL_GRID, stop_on_instability=True, patience=2)
    with pytest.warns(UserWarning, match="instability at epoch 4"):
        trainer, script, recorder = fit_scripted(resumed, ckpt_path=tmp_path / "full" / "epoch=3.ckpt")
    assert script.epochs == [4] and trainer.should_stop
    assert resumed.state_dict()["stop_rule"]["consecutive"] == 2
    assert (resumed.instability_count, resumed.stop_reason) == (monitor.instability_count, monitor.stop_reason)
    assert recorder.records[0]["metrics"] == pytest.approx(monitor.last_metrics, abs=0)

    # a checkpoint written after epoch 3's training but before its check: the check is caught up at train start
    checkpoint = torch.load(tmp_path / "full" / "epoch=3.ckpt", weights_only=False)
    before = torch.load(tmp_path / "full" / "epoch=2.ckpt", weights_only=False)["callbacks"][monitor.state_key]
    checkpoint["callbacks"][monitor.state_key] = before
    torch.save(checkpoint, tmp_path / "missed.ckpt")
    caught_up = StabilityMonitor(grid=SMALL_GRID, stop_on_instability=True, patience=2)
    with pytest.warns(UserWarning, match="StabilityMonitor: instability at epoch [34]") as warned:
        trainer, script, recorder = fit_scripted(caught_up, ckpt_path=tmp_path / "missed.ckpt")
    messages = [str(w.message) for w in warned if "StabilityMonitor: instability" in str(w.message)]
    assert [m.split(":")[1].strip() for m in messages] == ["instability at epoch 3", "instability at epoch 4"]
    assert [r["hook"] for r in recorder.records] == ["train_start", "epoch_end"]
    assert script.epochs == [4] and trainer.should_stop
    assert (caught_up.instability_count, caught_up.stop_reason) == (monitor.instability_count, monitor.stop_reason)
    assert not math.isnan(canonical(recorder.records[0]["metrics"])["flip_forgotten"])


def test_a_stop_is_said_in_the_summary_the_console_and_the_final_values(caplog, tmp_path) -> None:
    """The check that stops training says so in its text summary and console line; the final values tell a stop
    (``stability_final/stopped``) and how far the accuracy fell between two checks (``max_accuracy_drop``)."""
    import yaml
    from pytorch_lightning.loggers import CSVLogger

    monitor = StabilityMonitor(grid=SMALL_GRID, stop_on_instability=True, patience=1, verbose=True)
    logger = CSVLogger(tmp_path, name="run", version=0)
    script, recorder = Script(), Recorder(monitor)
    callbacks: list[pl.Callback] = [script, monitor, recorder, AssertScripted()]
    with caplog.at_level(logging.INFO), pytest.warns(UserWarning, match="StabilityMonitor: instability"):
        fit(callbacks, ScriptedClassifier(), dataset(), batch_size=25, max_epochs=MAX_EPOCHS, logger=logger)
    said = "Training stopped at epoch 1: instability (1 consecutive event, patience 1)."
    assert f"; {said}" in caplog.text  # the console line of the stopping check
    summaries = (tmp_path / "run" / "version_0" / "text" / "stability" / "summary.md").read_text().split("## step ")
    assert summaries[-1].rstrip().endswith(f"**{said}**") and said not in "".join(summaries[:-1])
    final = yaml.safe_load((tmp_path / "run" / "version_0" / "hparams.yaml").read_text())
    assert final["stability_final/stopped"] == 1.0
    _, first = scripted_loss_and_accuracy(0)
    _, second = scripted_loss_and_accuracy(1)
    assert final["stability_final/max_accuracy_drop"] == pytest.approx(first - second, abs=1e-12)  # 0.8 -> 0.4
