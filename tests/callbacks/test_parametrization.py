"""ParametrizationMonitor in a real Trainer: it logs the planted degeneracies and a histogram, takes explicit layers
and |x| units, and says what to pass for models and arguments it cannot use."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from torch import nn

from lightning_stability import ParametrizationMonitor
from lightning_stability.example import AbsoluteValue

from .. import helpers
from ..helpers import (
    MLP,
    NUM_FEATURES,
    PLANTED_HIDDEN,
    OneLayerMLP,
    first_layer_statistics,
    make_dataset,
    planted_mlp,
    tensorboard_events,
)


def fit(monitor: ParametrizationMonitor, model: pl.LightningModule, **kwargs) -> pl.Trainer:
    return helpers.fit([monitor], model, 200, batch_size=50, **kwargs)


def test_callback_logs_the_planted_degeneracies_and_a_histogram(tb_logger) -> None:
    model = planted_mlp(lr=0.0)  # lr 0: the planted weights stay
    monitor = ParametrizationMonitor(num_samples=200)
    fit(monitor, model, max_epochs=2, logger=tb_logger)
    expected = first_layer_statistics(model, make_dataset(200).tensors[0])
    expected = expected.to_metrics("stability/parametrization/layer0")
    assert monitor.last_metrics == pytest.approx(expected, nan_ok=True)
    assert monitor.checks_done == 2 and monitor.last_checked_epoch == 1
    assert monitor.last_metrics["stability/parametrization/layer0/dead_units"] == 1
    assert monitor.last_metrics["stability/parametrization/layer0/parallel_pairs"] == 1
    assert monitor.last_metrics["stability/parametrization/layer0/opposite_pairs"] == 1
    tb_logger.experiment.flush()
    events = tensorboard_events(tb_logger.log_dir)
    histograms = events.Histograms("stability/parametrization/layer0/balance")
    assert len(histograms) == 2
    assert histograms[-1].histogram_value.num == PLANTED_HIDDEN - 2  # live units only
    assert histograms[-1].histogram_value.max == pytest.approx(monitor.last_stats[0].balance_max, rel=1e-6)
    scalars = events.Scalars("stability/parametrization/layer0/dead_fraction")
    assert [s.value for s in scalars] == pytest.approx([1 / PLANTED_HIDDEN] * 2)


def test_explicit_layers_and_absolute_value_units() -> None:
    class Model(MLP):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.act, self.second = nn.Linear(NUM_FEATURES, 4), AbsoluteValue(), nn.Linear(4, 3)
            with torch.no_grad():
                self.first.weight[0], self.first.bias[0] = 0.0, 0.0  # |x| unit identically 0: dead and zero-weight
                self.first.bias[1] = -100.0  # z < 0 everywhere: alive for |x|

        def forward(self, x):
            return self.second(self.act(self.first(x)))

    pl.seed_everything(0)
    monitor = ParametrizationMonitor(layers=[("first", "act", "second")], num_samples=50)
    fit(monitor, Model(), max_epochs=1)
    metrics = monitor.last_metrics
    assert metrics["stability/parametrization/layer0/dead_units"] == 1
    assert metrics["stability/parametrization/layer0/zero_incoming"] == 1
    assert metrics["stability/parametrization/layer0/live_units"] == 3
    assert "stability/parametrization/layer1/units" not in metrics


@pytest.mark.parametrize(
    ("monitor", "model", "message"),
    [
        (lambda: ParametrizationMonitor(), OneLayerMLP, "found no hidden layer .* Pass `layers="),
        (lambda: ParametrizationMonitor(layers=[("net.0", "relu", "net.2")]), MLP, r"no module named \['relu'\]"),
        (
            lambda: ParametrizationMonitor(layers=[("net.0", "net.2", "net.1")]),
            MLP,
            "must be .*got \\(Linear, Linear, ReLU\\)",
        ),
    ],
)
def test_models_without_usable_layers(monitor, model, message) -> None:
    with pytest.raises(MisconfigurationException, match=message):
        fit(monitor(), model(), max_epochs=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(every_n_epochs=0), "`every_n_epochs` must be a positive integer"),
        (dict(num_samples=-3), "`num_samples` must be a positive integer"),
        (dict(threshold=1.0), r"`threshold` must be a cosine in \(0, 1\)"),
        (dict(zero_tol=-1.0), "`zero_tol` must be a finite number >= 0"),
        (dict(layers=["net.0", "net.1", "net.2"]), "`layers` must be a list of .* triples"),
        (dict(seed="0"), "`seed` must be an integer"),
    ],
)
def test_bad_arguments(kwargs, message) -> None:
    with pytest.raises(MisconfigurationException, match=message):
        ParametrizationMonitor(**kwargs)
