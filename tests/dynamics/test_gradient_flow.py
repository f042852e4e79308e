"""GradientFlowMonitor: per-layer gradient norms by hand, the first/last ratio, steps, vanishing depth, bad input."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.loggers import CSVLogger
from torch import nn

from lightning_stability import GradientFlowMonitor
from lightning_stability.dynamics import depth_layers, first_last_ratio, layer_norms

from .helpers import MLP, NUM_CLASSES, NUM_FEATURES, make_dataset, make_loader, trainer_kwargs


class DeepMLP(MLP):
    """``depth`` Linear layers with ``activation`` in between (and a LayerNorm that is not a depth layer)."""

    def __init__(self, depth: int = 3, width: int = 12, activation: type[nn.Module] = nn.ReLU, lr: float = 0.1):
        super().__init__(lr=lr)
        widths = [NUM_FEATURES] + [width] * (depth - 1) + [NUM_CLASSES]
        layers: list[nn.Module] = [nn.LayerNorm(NUM_FEATURES)]
        for index in range(depth):
            layers.append(nn.Linear(widths[index], widths[index + 1]))
            if index < depth - 1:
                layers.append(activation())
        self.net = nn.Sequential(*layers)


class HandNorms(pl.Callback):
    """After the monitor: every step's layer gradient 2-norms computed directly from ``.grad``."""

    def __init__(self, layers: list[str]) -> None:
        self.layers = layers
        self.steps: dict[int, dict[str, float]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        modules = dict(pl_module.named_modules())
        self.steps[trainer.global_step] = {
            name: float(torch.cat([p.grad.reshape(-1) for p in modules[name].parameters()]).double().norm())
            for name in self.layers
        }


def test_layer_norms_ratio_and_steps_match_a_hand_computation(tmp_path) -> None:
    pl.seed_everything(0)
    model = DeepMLP()
    layers = ["net.1", "net.3", "net.5"]
    assert depth_layers(model) == layers  # the LayerNorm (net.0) has a 1-D weight: not a depth layer
    monitor = GradientFlowMonitor(every_n_steps=3)
    hand = HandNorms(layers)
    logger = CSVLogger(tmp_path, name="csv", version=0)
    trainer = pl.Trainer(**trainer_kwargs(callbacks=[monitor, hand], max_epochs=2, logger=logger, log_every_n_steps=50))
    trainer.fit(model, make_loader(make_dataset(200), batch_size=25))  # 8 steps per epoch, 16 in all
    assert monitor.checks_done == 6 and monitor.last_logged_step == 15
    expected = hand.steps[15]
    for layer in layers:
        assert monitor.last_metrics[f"stability/gradient_flow/norm/{layer}"] == pytest.approx(expected[layer], rel=1e-5)
    ratio = monitor.last_metrics["stability/gradient_flow/first_last_ratio"]
    assert ratio == pytest.approx(expected["net.1"] / expected["net.5"], rel=1e-5)
    total = math.sqrt(sum(float(p.grad.double().norm()) ** 2 for p in model.parameters()))
    assert monitor.last_metrics["stability/gradient_flow/total_norm"] == pytest.approx(total, rel=1e-5)

    # written at steps 0, 3, …, 15 although log_every_n_steps is 50
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("stability/gradient_flow/first_last_ratio")]
    assert [int(row["step"]) for row in rows] == [0, 3, 6, 9, 12, 15]
    for row in rows:
        step = int(row["step"])
        hand_ratio = hand.steps[step]["net.1"] / hand.steps[step]["net.5"]
        assert float(row["stability/gradient_flow/first_last_ratio"]) == pytest.approx(hand_ratio, rel=1e-5)


def first_last(depth: int, activation: type[nn.Module]) -> float:
    pl.seed_everything(0)
    monitor = GradientFlowMonitor(every_n_steps=1)
    trainer = pl.Trainer(**trainer_kwargs(callbacks=[monitor], max_epochs=1, limit_train_batches=1))
    trainer.fit(DeepMLP(depth=depth, activation=activation), make_loader(make_dataset(50), batch_size=50))
    return monitor.last_metrics["stability/gradient_flow/first_last_ratio"]


def test_the_ratio_shows_vanishing_gradients_in_a_deep_sigmoid_network() -> None:
    shallow, deep = first_last(2, nn.Sigmoid), first_last(12, nn.Sigmoid)
    assert deep < 1e-3 < shallow  # each sigmoid layer multiplies the backward signal by at most 1/4


def test_norm_types_and_the_pure_functions() -> None:
    norms = {"a.weight": 3.0, "a.bias": 4.0, "b.weight": 1.0, "c.weight": 9.0}
    assert layer_norms(norms, ["a", "b"]) == {"a": 5.0, "b": 1.0}
    assert layer_norms(norms, ["a", "b"], norm_type=1) == {"a": 7.0, "b": 1.0}
    assert layer_norms(norms, ["a", "b"], norm_type=float("inf")) == {"a": 4.0, "b": 1.0}
    assert layer_norms(norms, ["a", "x"]) == {"a": 5.0}  # a layer without gradients is left out
    assert first_last_ratio([2.0, 5.0, 4.0]) == 0.5
    assert first_last_ratio([2.0, 0.0]) == math.inf and math.isnan(first_last_ratio([0.0, 0.0]))
    with pytest.raises(ValueError, match="at least two layers"):
        first_last_ratio([1.0])
    with pytest.raises(ValueError, match="`norm_type` must be a positive number"):
        layer_norms(norms, ["a"], norm_type=0)

    pl.seed_everything(0)
    monitor = GradientFlowMonitor(every_n_steps=1, norm_type="inf", layers=["net.3", "net.1"])
    hand: dict[str, float] = {}

    class MaxAbs(pl.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            modules = dict(pl_module.named_modules())
            for name in ("net.1", "net.3"):
                hand[name] = max(float(p.grad.abs().max()) for p in modules[name].parameters())

    trainer = pl.Trainer(**trainer_kwargs(callbacks=[monitor, MaxAbs()], max_epochs=1, limit_train_batches=2))
    trainer.fit(DeepMLP(depth=2), make_loader(make_dataset(50), batch_size=25))
    assert monitor.last_metrics["stability/gradient_flow/norm/net.1"] == pytest.approx(hand["net.1"])
    # the given order: net.3 is "first"
    assert monitor.last_metrics["stability/gradient_flow/first_last_ratio"] == pytest.approx(
        hand["net.3"] / hand["net.1"]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(every_n_steps=0), "`every_n_steps` must be a positive integer"),
        (dict(norm_type=-2), "`norm_type` must be a positive number or 'inf'"),
        (dict(norm_type="two"), "`norm_type` must be a positive number or 'inf'"),
        (dict(layers="net.0"), "`layers` must be a list of module names"),
        (dict(layers=["net.0"]), "at least two modules"),
    ],
)
def test_bad_arguments(kwargs, message) -> None:
    with pytest.raises(MisconfigurationException, match=message):
        GradientFlowMonitor(**kwargs)


class OneLayer(MLP):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(NUM_FEATURES, NUM_CLASSES))


@pytest.mark.parametrize(
    ("monitor", "model", "message"),
    [
        (lambda: GradientFlowMonitor(), OneLayer, r"found 1 layer\(s\) .* Pass `layers=\[module names\]`"),
        (lambda: GradientFlowMonitor(layers=["net.0", "net.9"]), MLP, r"no module named \['net.9'\]"),
        (lambda: GradientFlowMonitor(layers=["net.0", "net.1"]), MLP, r"modules \['net.1'\] own no parameters"),
    ],
)
def test_models_the_monitor_cannot_read(monitor, model, message) -> None:
    trainer = pl.Trainer(**trainer_kwargs(callbacks=[monitor()], max_epochs=1))
    with pytest.raises(MisconfigurationException, match=message):
        trainer.fit(model(), make_loader(make_dataset(50)))
