"""ParametrizationMonitor in a real Trainer: it logs the planted degeneracies and a histogram, takes explicit layers
and |x| units, and says what to pass for models and arguments it cannot use."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from torch import nn

from lightning_stability import ParametrizationMonitor
from lightning_stability.dynamics import parametrization_statistics
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


# ---------------------------------------------------------------------------------------------------- batch formats


def breast_cancer() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's breast-cancer set (569 samples, 30 features), standardized."""
    from sklearn.datasets import load_breast_cancer

    features, target = load_breast_cancer(return_X_y=True)
    x = torch.tensor(features, dtype=torch.float32)
    return (x - x.mean(0)) / x.std(0), torch.tensor(target)


class Records(torch.utils.data.Dataset):
    """The samples as ``{"features": x, "target": y}`` dicts."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.x[index], "target": self.y[index]}


class Tabular(pl.LightningModule):
    """30 → 12 → 12 → 2 ReLU network; reads dict and ``(x, y)`` batches alike (two hidden layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        x, y = (batch["features"], batch["target"]) if isinstance(batch, dict) else batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def fit_tabular(monitor: ParametrizationMonitor, dataset, **kwargs) -> tuple[pl.Trainer, Tabular]:
    pl.seed_everything(0)
    model = Tabular()
    loader = torch.utils.data.DataLoader(dataset, batch_size=64)
    return helpers.fit([monitor], model, loader, max_epochs=3, **kwargs), model


def test_dict_batches_with_input_fn_log_the_tuple_batch_values() -> None:
    x, y = breast_cancer()
    logged = {}
    for kind, dataset, options in (
        ("tuple", torch.utils.data.TensorDataset(x, y), {}),
        ("dict", Records(x, y), {"input_fn": lambda batch: batch["features"]}),
    ):
        logger = helpers.RecordingLogger()
        monitor = ParametrizationMonitor(num_samples=300, seed=4, log_histogram=False, **options)
        trainer, model = fit_tabular(monitor, dataset, logger=logger)
        assert monitor.checks_done == 3 and trainer.current_epoch == 3
        logged[kind] = [
            (step, {k: v for k, v in metrics.items() if k.startswith("stability/parametrization/")})
            for step, metrics in logger.calls
        ]
        logged[kind] = [(step, metrics) for step, metrics in logged[kind] if metrics]
    assert len(logged["dict"]) == 3
    assert {name.split("/")[2] for _, metrics in logged["dict"] for name in metrics} == {"layer0", "layer1"}
    # the same numbers at the same steps: NaN (no pair beyond the threshold is none here) compares by repr
    assert repr(logged["dict"]) == repr(logged["tuple"])
    # and they are the statistics of the probe samples, by hand, at the final weights
    indices = torch.sort(torch.randperm(569, generator=torch.Generator().manual_seed(4))[:300]).values
    first, second = model.net[0], model.net[2]
    with torch.no_grad():
        preactivations = first(x[indices])
    expected = parametrization_statistics(first.weight, first.bias, second.weight, preactivations, "relu")
    expected = expected.to_metrics("stability/parametrization/layer0")
    assert {k: v for k, v in monitor.last_metrics.items() if "/layer0/" in k} == pytest.approx(expected, nan_ok=True)


def test_dict_batches_without_input_fn_fail_at_fit_start_naming_it() -> None:
    x, y = breast_cancer()
    monitor = ParametrizationMonitor(num_samples=100)
    trainer = pl.Trainer(**helpers.trainer_kwargs(callbacks=[monitor]))
    pl.seed_everything(0)
    model = Tabular()
    with pytest.raises(MisconfigurationException) as caught:
        trainer.fit(model, torch.utils.data.DataLoader(Records(x, y), batch_size=64))
    message = str(caught.value)
    assert message.startswith(
        "ParametrizationMonitor: the default probe forward (`pl_module(x)` of an `(x, y)` batch, `pl_module(batch)` "
        "otherwise) failed on a dict batch with keys ['features', 'target'] (TypeError: "
    )
    assert "Pass `input_fn=`" in message
    assert "`ParametrizationMonitor(input_fn=lambda batch: batch['features'])`" in message
    assert isinstance(caught.value.__cause__, TypeError)
    assert trainer.current_epoch == 0 and trainer.global_step == 0 and monitor.checks_done == 0


@pytest.mark.parametrize(
    ("input_fn", "message"),
    [
        (
            lambda batch: batch["x"],
            r"the probe forward `pl_module\(input_fn\(batch\)\)` failed on a dict batch .*KeyError",
        ),
        (lambda batch: batch["features"].numpy(), r"`input_fn` returned a ndarray for a dict batch"),
        (
            lambda batch: batch["features"][:, :10],
            r"the probe forward `pl_module\(input_fn\(batch\)\)` failed .*RuntimeError: mat1",
        ),
    ],
)
def test_an_input_fn_that_does_not_give_the_model_input_fails_at_fit_start(input_fn, message) -> None:
    x, y = breast_cancer()
    monitor = ParametrizationMonitor(num_samples=100, input_fn=input_fn)
    with pytest.raises(MisconfigurationException, match=f"^ParametrizationMonitor: {message}"):
        fit_tabular(monitor, Records(x, y))
    assert monitor.checks_done == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(input_fn="features"), r"^ParametrizationMonitor: `input_fn` must be a function of a training batch"),
        (dict(forward_fn=3), r"^ParametrizationMonitor: `forward_fn` must be a function"),
        (
            dict(input_fn=lambda b: b["x"], forward_fn=lambda m, b: m(b["x"])),
            r"pass either `input_fn=` .* or `forward_fn=` .*, not both",
        ),
    ],
)
def test_bad_input_functions(kwargs, message) -> None:
    with pytest.raises(MisconfigurationException, match=message):
        ParametrizationMonitor(**kwargs)
