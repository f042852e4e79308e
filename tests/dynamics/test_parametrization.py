"""Planted degeneracies (dead, duplicated, negated, rescaled, disconnected units) are found and logged."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from lightning_stability import ParametrizationMonitor
from lightning_stability.dynamics import dead_units, find_hidden_layers, parametrization_statistics
from lightning_stability.example import AbsMLP, AbsoluteValue

from .helpers import MLP, NUM_FEATURES, make_dataset, make_loader, trainer_kwargs

HIDDEN = 8
DEAD, ORIGINAL, DUPLICATE, NEGATED, NEGATED_OF, RESCALED, DISCONNECTED = 0, 1, 2, 3, 4, 5, 6


def plant(net: nn.Sequential) -> None:
    """Unit 0 dead (bias −100), unit 2 = unit 1, unit 3 = −unit 4, unit 5 rescaled ×100 / ÷100, unit 6 cut off."""
    first, last = net[0], net[-1]
    with torch.no_grad():
        first.bias[DEAD] = -100.0
        first.weight[DUPLICATE], first.bias[DUPLICATE] = first.weight[ORIGINAL], first.bias[ORIGINAL]
        first.weight[NEGATED], first.bias[NEGATED] = -first.weight[NEGATED_OF], -first.bias[NEGATED_OF]
        first.weight[RESCALED] *= 100.0
        first.bias[RESCALED] *= 100.0
        last.weight[:, RESCALED] /= 100.0
        last.weight[:, DISCONNECTED] = 0.0


def planted_mlp(lr: float = 0.0) -> MLP:
    pl.seed_everything(0)
    model = MLP(hidden=HIDDEN, lr=lr)
    plant(model.net)
    return model


def statistics(model: MLP, inputs: torch.Tensor):
    first, last = model.net[0], model.net[-1]
    with torch.no_grad():
        preactivations = first(inputs)
    return parametrization_statistics(first.weight, first.bias, last.weight, preactivations, "relu")


def test_planted_degeneracies_are_found() -> None:
    inputs = make_dataset(200).tensors[0]
    pl.seed_everything(0)
    baseline = statistics(MLP(hidden=HIDDEN), inputs)  # the same seed without planting: nothing found
    assert baseline.dead_count == 0 and baseline.parallel_pairs == baseline.opposite_pairs == 0
    assert baseline.zero_units == 0 and baseline.balance_spread < 20

    stats = statistics(planted_mlp(), inputs)
    assert torch.nonzero(stats.dead).flatten().tolist() == [DEAD]
    assert stats.parallel_pairs == 1 and stats.max_cosine_pair == (ORIGINAL, DUPLICATE)
    assert stats.max_cosine == pytest.approx(1.0)
    assert stats.opposite_pairs == 1 and stats.min_cosine_pair == (NEGATED, NEGATED_OF)
    assert stats.min_cosine == pytest.approx(-1.0)
    assert stats.zero_units == 1 and stats.zero_outgoing == 1 and stats.zero_incoming == 0
    assert stats.outgoing_norms[DISCONNECTED] == 0 and math.isinf(stats.balance[DISCONNECTED])
    assert torch.nonzero(~stats.live).flatten().tolist() == [DEAD, DISCONNECTED]
    # the rescaled unit: balance × 10⁴ of its own, the largest, and the spread follows
    assert int(torch.argmax(torch.where(stats.live, stats.balance, 0))) == RESCALED
    assert stats.balance_max == pytest.approx(float(stats.balance[RESCALED]))
    assert stats.balance_spread == pytest.approx(stats.balance_max / stats.balance_min)
    assert stats.balance_spread > 1e4 / baseline.balance_spread
    metrics = stats.to_metrics("p")
    assert metrics["p/dead_fraction"] == 1 / HIDDEN and metrics["p/live_units"] == HIDDEN - 2


def test_threshold_and_zero_tolerance() -> None:
    weight = torch.tensor([[1.0, 0.0], [0.995, 0.0999], [-1.0, 0.0], [1e-9, 0.0]])
    out = torch.ones(1, 4)
    z = torch.ones(3, 4)
    stats = parametrization_statistics(weight, None, out, z, "relu", threshold=0.99)
    # cosines: (0,1) 0.995, (0,3) 1, (1,3) 0.995 parallel; (0,2) −1, (2,3) −1, (1,2) −0.995 opposite
    assert stats.parallel_pairs == 3 and stats.opposite_pairs == 3
    # at 0.999 only (0,2) remains, and the 1e-9 row counts as zero (out of the cosines)
    loose = parametrization_statistics(weight, None, out, z, "relu", threshold=0.999, zero_tol=1e-6)
    assert loose.zero_incoming == 1 and loose.parallel_pairs == 0 and loose.opposite_pairs == 1


def test_dead_unit_rules_per_activation() -> None:
    z = torch.tensor([[-1.0, 0.0, 7.0, 0.5, 0.0], [-2.0, 0.0, 8.0, -0.5, 0.0]])
    assert dead_units(z, "relu").tolist() == [True, True, False, False, True]
    assert dead_units(z, "leaky_relu").tolist() == [True, True, False, False, True]
    assert dead_units(z, "relu6").tolist() == [True, True, True, False, True]  # saturated at 6 as well
    assert dead_units(z, "abs").tolist() == [False, True, False, False, True]  # |x|: only z ≡ 0
    with pytest.raises(ValueError, match="`kind` must be one of"):
        dead_units(z, "tanh")
    with pytest.raises(ValueError, match=r"shape \[N, m\]"):
        dead_units(torch.zeros(0, 3), "relu")


def test_hidden_layers_are_found_in_module_order() -> None:
    model = nn.Sequential(
        nn.Linear(4, 5),
        nn.LeakyReLU(),
        nn.Dropout(0.1),
        nn.Sequential(nn.Linear(5, 6), nn.ReLU6()),
        nn.Linear(6, 7),
        nn.Tanh(),  # not a supported activation: no layer
        nn.Linear(7, 3),
        nn.PReLU(),
        nn.Linear(4, 2),  # does not read the 3 units: no layer
    )
    found = [(h.incoming_name, h.activation_name, h.outgoing_name, h.kind) for h in find_hidden_layers(model)]
    assert found == [("0", "1", "3.0", "leaky_relu"), ("3.0", "3.1", "4", "relu6")]
    absolute = [(h.incoming_name, h.outgoing_name, h.kind) for h in find_hidden_layers(AbsMLP(784, (5, 6), 10))]
    assert absolute == [("net.0", "net.2", "abs"), ("net.2", "net.4", "abs")]


def fit(monitor: ParametrizationMonitor, model: pl.LightningModule, **kwargs) -> pl.Trainer:
    trainer = pl.Trainer(**trainer_kwargs(callbacks=[monitor], **kwargs))
    trainer.fit(model, make_loader(make_dataset(200), batch_size=50))
    return trainer


def test_callback_logs_the_planted_degeneracies_and_a_histogram(tmp_path) -> None:
    model = planted_mlp(lr=0.0)  # lr 0: the planted weights stay
    monitor = ParametrizationMonitor(num_samples=200)
    logger = TensorBoardLogger(tmp_path, name="tb", version=0)
    fit(monitor, model, max_epochs=2, logger=logger)
    expected = statistics(model, make_dataset(200).tensors[0]).to_metrics("stability/parametrization/layer0")
    assert monitor.last_metrics == pytest.approx(expected, nan_ok=True)
    assert monitor.checks_done == 2 and monitor.last_checked_epoch == 1
    assert monitor.last_metrics["stability/parametrization/layer0/dead_units"] == 1
    assert monitor.last_metrics["stability/parametrization/layer0/parallel_pairs"] == 1
    assert monitor.last_metrics["stability/parametrization/layer0/opposite_pairs"] == 1
    logger.experiment.flush()
    events = EventAccumulator(str(tmp_path / "tb" / "version_0"), size_guidance={"histograms": 0}).Reload()
    histograms = events.Histograms("stability/parametrization/layer0/balance")
    assert len(histograms) == 2
    assert histograms[-1].histogram_value.num == HIDDEN - 2  # live units only
    assert histograms[-1].histogram_value.max == pytest.approx(monitor.last_stats[0].balance_max, rel=1e-6)
    scalars = events.Scalars("stability/parametrization/layer0/dead_fraction")
    assert [s.value for s in scalars] == pytest.approx([1 / HIDDEN] * 2)


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


class NoHiddenLayer(MLP):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(NUM_FEATURES, 3))


@pytest.mark.parametrize(
    ("monitor", "model", "message"),
    [
        (lambda: ParametrizationMonitor(), NoHiddenLayer, "found no hidden layer .* Pass `layers="),
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


def test_bad_statistics_inputs() -> None:
    w, v, z = torch.ones(4, 2), torch.ones(3, 4), torch.ones(5, 4)
    with pytest.raises(ValueError, match="same m"):
        parametrization_statistics(w, None, torch.ones(3, 5), z, "relu")
    with pytest.raises(ValueError, match=r"`bias_in` must have shape \[4\]"):
        parametrization_statistics(w, torch.ones(3), v, z, "relu")
    with pytest.raises(ValueError, match=r"`preactivations` must have shape \[N, 4\]"):
        parametrization_statistics(w, None, v, torch.ones(5, 3), "relu")
    with pytest.raises(ValueError, match="`threshold` must lie in"):
        parametrization_statistics(w, None, v, z, "relu", threshold=0.0)
