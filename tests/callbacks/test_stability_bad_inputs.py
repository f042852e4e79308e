"""Bad input fails with a clear error that says what to pass instead; what was logged before stays on disk."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import StabilityMonitor

from .. import helpers
from ..helpers import SMALL_GRID, DictDataset, DictMLP, Stream, csv_rows, make_data, make_dataset, make_loader

N = 200
Errors = (ValueError, MisconfigurationException)


def fit(monitor: StabilityMonitor, loader: DataLoader | None = None, model=None, **kwargs) -> pl.Trainer:
    """A seeded fit of ``model`` (default a fresh MLP) with the monitor, on ``loader`` (default N samples)."""
    return helpers.fit([monitor], model, N if loader is None else loader, seed=0, **kwargs)


def test_iterable_dataset_without_length() -> None:
    stream = DataLoader(Stream(make_dataset(N)), batch_size=32)
    with pytest.raises(MisconfigurationException, match="IterableDataset") as error:
        fit(StabilityMonitor(grid=SMALL_GRID), stream, max_epochs=1)
    assert "Pass `dataset=`" in str(error.value) and "`dataloader=`" in str(error.value)
    # ... and what the message suggests works
    monitor = StabilityMonitor(grid=SMALL_GRID, dataset=make_dataset(N))
    fit(monitor, DataLoader(Stream(make_dataset(N)), batch_size=32), max_epochs=1)
    assert monitor.last_report.num_samples == N


def test_nan_logits_fail_and_keep_earlier_csv_metrics(csv_logger) -> None:
    def forward_fn(module, batch):
        x, y = batch
        logits = module(x)
        if module.current_epoch >= 2:  # the model "diverges" in its third epoch
            logits = logits.clone()
            logits[5, 1] = float("nan")
        return logits, y

    monitor = StabilityMonitor(grid=SMALL_GRID, forward_fn=forward_fn)
    with pytest.warns(
        UserWarning,
        match=r"StabilityMonitor: .*not finite \(NaN or inf\) for 1 sample\(s\) after epoch 2 \(samples 5\)",
    ):
        trainer = fit(monitor, logger=csv_logger, max_epochs=4)  # stops the way EarlyStopping(check_finite=True) does
    assert trainer.current_epoch == 3 and trainer.should_stop  # epoch 2 finished, epoch 3 never ran
    assert "learning rate" in monitor.stop_reason and "samples 5" in monitor.stop_reason
    assert monitor.checks_done == 3  # start, epochs 0 and 1

    # the metrics of the checks before the failure were written to disk
    rows = csv_rows(csv_logger.log_dir, "stability_diagnostics/check_epoch")
    assert [float(row["stability_diagnostics/check_epoch"]) for row in rows] == [-1.0, 0.0, 1.0]
    assert float(rows[-1]["stability/accuracy"]) == pytest.approx(monitor.last_metrics["stability/accuracy"])


def test_targets_outside_the_classes() -> None:
    x, y = make_data(N)
    one_based = make_loader(TensorDataset(x, y + 1))  # labels 1..3 for a 3-output model
    monitor = StabilityMonitor(grid=SMALL_GRID, check_at_start=False)
    with pytest.raises(
        MisconfigurationException, match=r"labels outside the 3 classes \[0, 2\] the model scores"
    ) as error:
        fit(monitor, one_based, max_epochs=1)  # at fit start, on the first batch, not after the epoch
    assert "1-based labels" in str(error.value) and "ignore_index=-100" in str(error.value)
    assert monitor.checks_done == 0


@pytest.mark.parametrize(
    ("forward_fn", "match"),
    [
        (lambda m, b: (m(b[0])[:, :, None], b[1]), r"logits of shape \[B, K\] and targets of shape \[B\]"),
        (lambda m, b: (m(b[0]), b[1][:, None].expand(-1, 2)), r"logits of shape \[B, K\] and targets of shape \[B\]"),
        (lambda m, b: (m(b[0])[:-1], b[1]), r"for a batch of B=\d+ samples"),
        (lambda m, b: (m(b[0]), b[1].float() + 0.5), r"labels are soft .* such as \d+\.5"),  # whole floats are fine
        (lambda m, b: (m(b[0]).tolist(), b[1]), r"must return `\(logits, targets\)` tensors"),
        (lambda m, b: m(b[0]), r"must return `\(logits, targets\)`"),  # forgot the targets
        (lambda m, b: (m(b[0]), b[1], None), r"must return `\(logits, targets\)`"),
    ],
    ids=["logits_3d", "targets_2d", "batch_mismatch", "float_targets", "not_tensors", "logits_only", "triple"],
)
def test_forward_fn_with_wrong_outputs(forward_fn, match: str) -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, forward_fn=forward_fn, batch_size=50)
    with pytest.raises(Errors, match=match):
        fit(monitor, max_epochs=1)
    assert monitor.checks_done == 0


def test_default_forward_needs_x_y_batches() -> None:
    loader = make_loader(DictDataset(N))
    with pytest.raises(MisconfigurationException, match=r"expects `\(x, y\)` batches, got dict") as error:
        fit(StabilityMonitor(grid=SMALL_GRID), loader, model=DictMLP(), max_epochs=1)
    assert "forward_fn=" in str(error.value)
    # ... and the forward_fn it asks for works
    monitor = StabilityMonitor(grid=SMALL_GRID, forward_fn=lambda m, b: (m(b["x"]), b["y"]))
    fit(monitor, loader, model=DictMLP(), max_epochs=1)
    assert monitor.last_report.num_samples == N


@pytest.mark.parametrize("length", [N - 10, N + 10])
def test_weights_of_the_wrong_length_fail_before_training(length: int) -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, weights=torch.ones(length))
    with pytest.raises(
        MisconfigurationException, match=f"`weights` has {length} entries but the training dataset has {N}"
    ):
        fit(monitor, max_epochs=1)
    assert monitor.checks_done == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(every_n_epochs=0), "every_n_epochs"),
        (dict(dataset=make_dataset(10), dataloader=make_loader(make_dataset(10))), "not both"),
        (dict(weights="inverse"), "'uniform', 'balanced' or a tensor"),
        (dict(patience=0), "patience"),
        (dict(tol=float("nan")), "tol"),
        (dict(quantiles=(0.5, 1.0)), "quantiles"),
        (dict(grid=dict(zetas=(2.0,))), "zetas"),
        (dict(grid=dict(no_such_parameter=1)), "no_such_parameter"),
    ],
)
def test_bad_constructor_arguments_fail_at_once(kwargs, match: str) -> None:
    # a bad or unknown grid key too: the option's MisconfigurationException, not CertificateGrid's ValueError/TypeError
    with pytest.raises(MisconfigurationException, match=match):
        StabilityMonitor(**kwargs)
