"""MarginSource (callbacks/collect.py): where the certified samples come from, its loader and its margin pass."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability.callbacks.collect import MarginSource
from lightning_stability.callbacks.forward_output import default_forward
from lightning_stability.distributions import MisconfigurationError
from tests.helpers import trainer_kwargs

# logits = x @ W^T with W = [[1, 0], [0, 1], [0.5, 0.5]], all exact in float32
X = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 4.0]])
Y = torch.tensor([0, 1, 2, 0, 1, 1])
LOGITS = [[1.0, 0.0, 0.5], [0.0, 2.0, 1.0], [3.0, 1.0, 2.0], [1.0, 1.0, 1.0], [2.0, 0.0, 1.0], [0.0, 4.0, 2.0]]
MARGINS = [0.5, 1.0, -1.0, 0.0, -2.0, 2.0]  # z_y − max_{j≠y} z_j, by hand
PREDICTED = [0, 1, 0, 0, 0, 1]  # first largest logit
LOSSES = [math.log(sum(math.exp(z) for z in row)) - row[y] for row, y in zip(LOGITS, Y.tolist())]


@pytest.fixture(params=["pytorch_lightning", "lightning.pytorch"])
def distribution(request: pytest.FixtureRequest):
    """Each installed Lightning distribution's package."""
    return pytest.importorskip(request.param)


def fixed_linear_module(distribution):
    class Fixed(distribution.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(2, 3, bias=False)
            with torch.no_grad():
                self.layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))

        def forward(self, x):
            return self.layer(x)

        def training_step(self, batch, batch_idx):
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    return Fixed()


def fit_running(distribution, hook, train_loader: DataLoader, **overrides):
    """Fit the fixed linear model for one epoch and call ``hook(trainer, pl_module)`` at train start."""
    results = {}

    class Run(distribution.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            results.update(hook(trainer, pl_module))

    trainer = distribution.Trainer(**trainer_kwargs(callbacks=[Run()], max_epochs=1, **overrides))
    trainer.fit(fixed_linear_module(distribution), train_loader)
    return results


def batches_of(loader) -> list[list[int]]:
    return [indices.tolist() for indices, _ in loader]


def test_pass_over_the_training_loaders_dataset(distribution) -> None:
    source = MarginSource(None, None, None, 0, default_forward)

    def hook(trainer, pl_module):
        return {
            "pass": source.run(trainer, pl_module),
            "num_samples": source.num_samples(trainer),
            "by_index": source.samples_by_index(trainer),
            "data": source.training_data(trainer),
            "batches": batches_of(source.loader(trainer)),
        }

    dataset = TensorDataset(X, Y)
    results = fit_running(distribution, hook, DataLoader(dataset, batch_size=2))
    margin_pass = results["pass"]
    assert margin_pass.indices.tolist() == [0, 1, 2, 3, 4, 5]
    assert margin_pass.targets.tolist() == Y.tolist()
    assert margin_pass.margins.tolist() == MARGINS
    assert margin_pass.predicted.tolist() == PREDICTED
    assert margin_pass.losses.tolist() == pytest.approx(LOSSES, abs=1e-6)
    assert margin_pass.num_classes == 3 and margin_pass.margins.dtype == torch.float64
    assert results["num_samples"] == 6 and results["by_index"] is dataset
    assert results["data"].dataset is dataset and results["data"].batch_size == 2
    assert results["batches"] == [[0, 1, 2, 3, 4, 5]]  # default batch size max(256, 4 × 2)


def test_pass_over_given_indices_and_batch_size(distribution) -> None:
    source = MarginSource(TensorDataset(X, Y), None, 4, 0, default_forward)

    def hook(trainer, pl_module):
        return {
            "subset": source.run(trainer, pl_module, torch.tensor([1, 4, 5])),
            "batches": batches_of(source.loader(trainer)),
            "probe": batches_of(source.loader(trainer, batch_size=5)),
        }

    # the training loader holds other samples: ``dataset=`` is certified
    results = fit_running(distribution, hook, DataLoader(TensorDataset(X[:2], Y[:2]), batch_size=2))
    assert results["subset"].indices.tolist() == [1, 4, 5]
    assert results["subset"].margins.tolist() == [1.0, -2.0, 2.0]
    assert results["batches"] == [[0, 1, 2, 3], [4, 5]]
    assert results["probe"] == [[0, 1, 2, 3, 4], [5]]


def test_pass_over_a_user_dataloader_by_position(distribution) -> None:
    # the user's loader visits the samples in its own order: positions, not dataset indices
    order = [5, 2, 0, 3]
    loader = DataLoader(TensorDataset(X[order], Y[order]), batch_size=3)
    source = MarginSource(None, loader, None, 0, default_forward)

    def hook(trainer, pl_module):
        return {"pass": source.run(trainer, pl_module), "by_index": source.samples_by_index(trainer)}

    results = fit_running(distribution, hook, DataLoader(TensorDataset(X, Y), batch_size=2))
    assert results["pass"].indices.tolist() == [0, 1, 2, 3]
    assert results["pass"].margins.tolist() == [MARGINS[i] for i in order]
    assert results["by_index"] is None


def test_custom_forward_fn_is_used(distribution) -> None:
    def forward(module, batch):
        return -module(batch[0]), batch[1]  # negated scores: margin z_y − max_{j≠y} z_j of −z

    source = MarginSource(None, None, None, 0, forward)
    results = fit_running(
        distribution, lambda t, m: {"pass": source.run(t, m)}, DataLoader(TensorDataset(X, Y), batch_size=3)
    )
    expected = [-row[y] - max(-z for j, z in enumerate(row) if j != y) for row, y in zip(LOGITS, Y.tolist())]
    assert results["pass"].margins.tolist() == expected


def test_fast_dev_run_passes_one_batch(distribution) -> None:
    source = MarginSource(None, None, 2, 0, default_forward)
    results = fit_running(
        distribution,
        lambda t, m: {"pass": source.run(t, m)},
        DataLoader(TensorDataset(X, Y), batch_size=2),
        fast_dev_run=True,
    )
    assert results["pass"].indices.tolist() == [0, 1] and results["pass"].margins.tolist() == MARGINS[:2]


def test_dataloader_cannot_be_sharded() -> None:
    source = MarginSource(None, DataLoader(TensorDataset(X, Y)), None, 0, default_forward)
    trainer = SimpleNamespace(world_size=2, global_rank=1)
    with pytest.raises(MisconfigurationError, match=r"StabilityMonitor\(dataloader=\.\.\.\) cannot be sharded"):
        source.loader(trainer)


def test_dataset_sharded_across_ranks(distribution) -> None:
    # rank 1 of 2 over the given indices takes every second one from the second
    trainer = distribution.Trainer(**trainer_kwargs())
    source = MarginSource(TensorDataset(X, Y), None, 8, 0, default_forward)
    sharded = SimpleNamespace(world_size=2, global_rank=1, strategy=trainer.strategy, train_dataloader=None)
    assert batches_of(source.loader(sharded, indices=torch.tensor([0, 2, 3, 5]))) == [[2, 5]]
    assert batches_of(source.loader(sharded)) == [[1, 3, 5]]  # DistributedSampler, no shuffling


def test_no_training_data_found(distribution) -> None:
    trainer = distribution.Trainer(**trainer_kwargs())
    source = MarginSource(None, None, None, 0, default_forward)
    with pytest.raises(MisconfigurationError, match=r"StabilityMonitor could not find the training dataset"):
        source.num_samples(trainer)
