"""SharpnessMonitor's optional values in a real Trainer — ``tr(H)`` with its standard error, ``λ_max`` per parameter
group — and ``mode="train"`` (batch statistics, buffers untouched), each against the explicit Hessian."""

from __future__ import annotations

from copy import deepcopy

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.func import functional_call

from lightning_stability import SharpnessMonitor

from .. import helpers
from ..helpers import MLP, NUM_CLASSES, NUM_FEATURES, explicit_hessian, make_dataset, make_loader, subset_tensors

PREFIX = "stability/sharpness/"


class TwoGroupMLP(MLP):
    """The MLP with one SGD parameter group per layer (the second layer's learning rate halved)."""

    def configure_optimizers(self) -> torch.optim.Optimizer:
        first, second = self.net[0], self.net[-1]
        return torch.optim.SGD(
            [{"params": list(first.parameters())}, {"params": list(second.parameters()), "lr": self.lr / 2}],
            lr=self.lr,
        )


def test_trace_and_group_sharpness_against_the_explicit_hessian() -> None:
    pl.seed_everything(0)
    model = TwoGroupMLP(hidden=8)
    monitor = SharpnessMonitor(num_samples=120, trace_samples=40, groups=True, tol=1e-6, max_iter=300)
    helpers.fit([monitor], model, 150, batch_size=50, max_epochs=1)
    metrics = monitor.last_metrics
    hessian = explicit_hessian(model, *subset_tensors(make_dataset(150), monitor.indices)).double()
    trace = float(torch.trace(hessian))
    assert 0 < metrics[PREFIX + "trace_stderr"] < 0.2 * abs(trace)
    assert abs(metrics[PREFIX + "trace"] - trace) <= 4 * metrics[PREFIX + "trace_stderr"]
    split = NUM_FEATURES * 8 + 8  # the first layer's weight and bias, then the second layer's
    for name, block in (("group0", slice(0, split)), ("group1", slice(split, split + 8 * NUM_CLASSES + NUM_CLASSES))):
        expected = float(torch.linalg.eigvalsh(hessian[block, block])[-1])
        assert metrics[PREFIX + f"{name}/lambda_max"] == pytest.approx(expected, rel=1e-4)
    assert PREFIX + "group2/lambda_max" not in metrics
    estimates = monitor.last_estimates
    assert estimates is not None and estimates.trace is not None
    blocks = sum(block.products for block in estimates.groups if block is not None)
    # two learning rates: the edge ratio needs a Lanczos run of its own, also counted
    assert estimates.edge is not None
    expected_count = estimates.top[0].products + estimates.edge.products + 40 + blocks
    assert metrics[PREFIX + "hvp_count"] == expected_count == estimates.products


def test_the_optional_values_are_off_by_default() -> None:
    pl.seed_everything(0)
    monitor = SharpnessMonitor(num_samples=40)
    helpers.fit([monitor], TwoGroupMLP(hidden=8), 40, batch_size=20, max_epochs=1)
    assert not any("trace" in name or "group" in name for name in monitor.last_metrics)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(trace_samples=1), r"`trace_samples` must be 0 \(no trace\) or an integer >= 2, got 1"),
        (dict(trace_samples=-3), r"`trace_samples` must be 0 \(no trace\) or an integer >= 2, got -3"),
        (dict(trace_samples=3, trace_method="hutch++"), r"an integer >= 4, got 3"),
        (dict(trace_method="exact"), r"`trace_method` must be 'hutchinson' or 'hutch\+\+'"),
        (dict(groups="optimizer"), "`groups` must be True or False"),
        (dict(mode="test"), "`mode` must be 'eval' or 'train'"),
    ],
)
def test_bad_options(kwargs, message) -> None:
    with pytest.raises(MisconfigurationException, match=message):
        SharpnessMonitor(**kwargs)


# ---------------------------------------------------------------------------------------------------- batch norm


class BatchNormMLP(MLP):
    """10 → 8 → BatchNorm1d → tanh → dropout → 3."""

    def __init__(self) -> None:
        super().__init__(hidden=8, lr=0.1)
        self.net = nn.Sequential(
            nn.Linear(NUM_FEATURES, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, NUM_CLASSES)
        )


def batch_statistics_hessian(model: nn.Module, chunks: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The explicit Hessian of ``Σ_c (n_c/n) CE(model(x_c), y_c)`` with batch-norm batch statistics, dropout off
    (a copy of the model: its running statistics may move)."""
    copy = deepcopy(model).eval()
    copy.net[1].train()
    named = [(name, p) for name, p in copy.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in named])
    total = sum(len(x) for x, _ in chunks)

    def loss(vector: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for name, p in named:
            params[name] = vector[start : start + p.numel()].reshape(p.shape)
            start += p.numel()
        return sum(
            len(x) / total * nn.functional.cross_entropy(functional_call(copy, params, (x,)), y) for x, y in chunks
        )

    return torch.autograd.functional.hessian(loss, flat).double()


class Snapshot(pl.Callback):
    """The model's whole state (parameters and buffers) and every submodule's mode at each epoch end."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, torch.Tensor], list[bool]]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = {name: value.detach().clone() for name, value in pl_module.state_dict().items()}
        self.seen.append((state, [m.training for m in pl_module.modules()]))


def test_train_mode_uses_batch_statistics_of_the_training_batches_and_leaves_the_model_as_it_was() -> None:
    pl.seed_everything(0)
    model = BatchNormMLP()
    before, after = Snapshot(), Snapshot()
    monitor = SharpnessMonitor(num_samples=100, mode="train", tol=1e-7, max_iter=300)
    loader = make_loader(make_dataset(100), batch_size=50, shuffle=True)
    helpers.fit([before, monitor, after], model, loader, max_epochs=1)
    # the check changed nothing: parameters, running statistics, num_batches_tracked, modes
    (state_before, modes_before), (state_after, modes_after) = before.seen[0], after.seen[0]
    assert state_before.keys() == state_after.keys() and "net.1.running_mean" in state_before
    assert all(torch.equal(state_before[name], state_after[name]) for name in state_before)
    assert modes_before == modes_after and all(modes_before)
    # the Hessian of the mean over the training batch size's chunks (50: the loader's), each with its statistics
    inputs, targets = subset_tensors(make_dataset(100), monitor.indices)
    chunks = [(inputs[:50], targets[:50]), (inputs[50:], targets[50:])]
    expected = float(torch.linalg.eigvalsh(batch_statistics_hessian(model, chunks))[-1])
    assert monitor.last_metrics[PREFIX + "lambda_max"] == pytest.approx(expected, rel=1e-4)
    # ... which is not the eval-mode (running statistics) Hessian, nor that of one batch of 100
    running = float(torch.linalg.eigvalsh(explicit_hessian(model, inputs, targets).double())[-1])
    whole = float(torch.linalg.eigvalsh(batch_statistics_hessian(model, [(inputs, targets)]))[-1])
    assert abs(running - expected) > 0.05 * expected and abs(whole - expected) > 1e-3 * expected
    # the default mode reads the running statistics, as before
    pl.seed_everything(0)
    eval_model = BatchNormMLP()
    eval_monitor = SharpnessMonitor(num_samples=100, tol=1e-7, max_iter=300)
    helpers.fit([eval_monitor], eval_model, make_loader(make_dataset(100), batch_size=50, shuffle=True), max_epochs=1)
    inputs, targets = subset_tensors(make_dataset(100), eval_monitor.indices)
    reference = float(torch.linalg.eigvalsh(explicit_hessian(eval_model, inputs, targets).double())[-1])
    assert eval_monitor.last_metrics[PREFIX + "lambda_max"] == pytest.approx(reference, rel=1e-4)
