"""GradientFlowMonitor: per-layer gradient norms by hand, the first/last ratio, steps, vanishing depth, bad input."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from torch import nn

from lightning_stability import GradientFlowMonitor
from lightning_stability.dynamics import depth_layers

from ..helpers import MLP, NUM_CLASSES, NUM_FEATURES, OneLayerMLP, csv_rows, fit


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


def two_norm(grad: torch.Tensor) -> float:
    return float(grad.double().norm())


def max_abs(grad: torch.Tensor) -> float:
    return float(grad.abs().max())


class HandNorms(pl.Callback):
    """After the monitor: every step's layer gradient norms computed directly from ``.grad``."""

    def __init__(self, layers: list[str], norm: Callable[[torch.Tensor], float] = two_norm) -> None:
        self.layers = layers
        self.norm = norm
        self.steps: dict[int, dict[str, float]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        modules = dict(pl_module.named_modules())
        self.steps[trainer.global_step] = {
            name: self.norm(torch.cat([p.grad.reshape(-1) for p in modules[name].parameters()])) for name in self.layers
        }


def test_layer_norms_ratio_and_steps_match_a_hand_computation(csv_logger) -> None:
    pl.seed_everything(0)
    model = DeepMLP()
    layers = ["net.1", "net.3", "net.5"]
    assert depth_layers(model) == layers  # the LayerNorm (net.0) has a 1-D weight: not a depth layer
    monitor = GradientFlowMonitor(every_n_steps=3)
    hand = HandNorms(layers)
    # 8 steps per epoch, 16 in all
    fit([monitor, hand], model, 200, batch_size=25, max_epochs=2, logger=csv_logger, log_every_n_steps=50)
    assert monitor.checks_done == 6 and monitor.last_logged_step == 15
    expected = hand.steps[15]
    for layer in layers:
        assert monitor.last_metrics[f"stability/gradient_flow/norm/{layer}"] == pytest.approx(expected[layer], rel=1e-5)
    ratio = monitor.last_metrics["stability/gradient_flow/first_last_ratio"]
    assert ratio == pytest.approx(expected["net.1"] / expected["net.5"], rel=1e-5)
    total = math.sqrt(sum(float(p.grad.double().norm()) ** 2 for p in model.parameters()))
    assert monitor.last_metrics["stability/gradient_flow/total_norm"] == pytest.approx(total, rel=1e-5)

    # written at steps 0, 3, …, 15 although log_every_n_steps is 50
    rows = csv_rows(csv_logger.log_dir, "stability/gradient_flow/first_last_ratio")
    assert [int(row["step"]) for row in rows] == [0, 3, 6, 9, 12, 15]
    for row in rows:
        step = int(row["step"])
        hand_ratio = hand.steps[step]["net.1"] / hand.steps[step]["net.5"]
        assert float(row["stability/gradient_flow/first_last_ratio"]) == pytest.approx(hand_ratio, rel=1e-5)


def first_last(depth: int, activation: type[nn.Module]) -> float:
    pl.seed_everything(0)
    monitor = GradientFlowMonitor(every_n_steps=1)
    fit([monitor], DeepMLP(depth=depth, activation=activation), 50, batch_size=50, max_epochs=1, limit_train_batches=1)
    return monitor.last_metrics["stability/gradient_flow/first_last_ratio"]


def test_the_ratio_shows_vanishing_gradients_in_a_deep_sigmoid_network() -> None:
    shallow, deep = first_last(2, nn.Sigmoid), first_last(12, nn.Sigmoid)
    assert deep < 1e-3 < shallow  # each sigmoid layer multiplies the backward signal by at most 1/4


def test_the_inf_norm_and_the_given_layer_order() -> None:
    pl.seed_everything(0)
    monitor = GradientFlowMonitor(every_n_steps=1, norm_type="inf", layers=["net.3", "net.1"])
    hand_norms = HandNorms(["net.1", "net.3"], norm=max_abs)
    fit([monitor, hand_norms], DeepMLP(depth=2), 50, batch_size=25, max_epochs=1, limit_train_batches=2)
    assert sorted(hand_norms.steps) == [0, 1]
    hand = hand_norms.steps[1]
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


@pytest.mark.parametrize(
    ("monitor", "model", "message"),
    [
        (lambda: GradientFlowMonitor(), OneLayerMLP, r"found 1 layer\(s\) .* Pass `layers=\[module names\]`"),
        (lambda: GradientFlowMonitor(layers=["net.0", "net.9"]), MLP, r"no module named \['net.9'\]"),
        (lambda: GradientFlowMonitor(layers=["net.0", "net.1"]), MLP, r"modules \['net.1'\] own no parameters"),
    ],
)
def test_models_the_monitor_cannot_read(monitor, model, message) -> None:
    with pytest.raises(MisconfigurationException, match=message):
        fit([monitor()], model(), 50, max_epochs=1)
