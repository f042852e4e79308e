"""Setups this project did not design: an augmented conv net on sklearn's 8×8 digits, bf16, tiny datasets, a
binary model with one logit, unwritable and shared output paths. Each either works or fails before training with
a message that names the fix."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lightning_stability import StabilityMonitor

from ..helpers import SMALL_GRID

DIGITS, LABELS = load_digits(return_X_y=True)
IMAGES = torch.tensor(DIGITS[:480], dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
TARGETS = torch.tensor(LABELS[:480])


class Digits(Dataset):
    """The digits, with a random shift and noise when ``augment`` (drawn with torch or with NumPy)."""

    def __init__(self, augment: bool, rng: str = "torch") -> None:
        self.augment, self.rng = augment, rng

    def __len__(self) -> int:
        return len(TARGETS)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = IMAGES[index]
        if self.augment:
            if self.rng == "torch":
                noise, shift = torch.randn_like(image), int(torch.randint(-1, 2, ()))
            else:
                noise, shift = torch.from_numpy(np.random.randn(*image.shape)).float(), int(np.random.randint(-1, 2))
            image = torch.roll(image + 0.1 * noise, shift, dims=2)
        return image, TARGETS[index]


class ConvNet(pl.LightningModule):
    def __init__(self, lr: float = 0.05, outputs: int = 10) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 64, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        if logits.shape[1] == 1:  # a binary model with one logit
            return nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.float())
        return nn.functional.cross_entropy(logits, y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def fit(
    monitor: StabilityMonitor | None, data: Dataset, model: ConvNet | None = None, **trainer_options: Any
) -> ConvNet:
    pl.seed_everything(0)
    model = model or ConvNet()
    options: dict[str, Any] = dict(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    options.update(trainer_options)
    trainer = pl.Trainer(callbacks=[monitor] if monitor else [], **options)
    trainer.fit(model, DataLoader(data, batch_size=32, shuffle=True))
    return model


def test_augmented_training_data_fail_before_training_and_name_the_fix() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    with pytest.raises(MisconfigurationException, match="different samples each time") as error:
        fit(monitor, Digits(augment=True))
    assert "`dataset=` with the evaluation transforms" in str(error.value)
    assert 'stochastic_data="approximate"' in str(error.value)
    assert monitor.checks_done == 0


def test_an_evaluation_view_certifies_the_clean_samples() -> None:
    clean = Digits(augment=False)
    monitor = StabilityMonitor(grid=SMALL_GRID, dataset=clean)
    model = fit(monitor, Digits(augment=True))
    model.eval()
    with torch.no_grad():
        expected = (model(IMAGES).argmax(1) == TARGETS).double().mean().item()  # ties have probability 0 here
    assert monitor.last_report.accuracy == pytest.approx(expected, abs=1e-12)
    assert monitor.approximate is False


def test_frozen_weights_give_no_instability_events() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, dataset=Digits(augment=False))
    fit(monitor, Digits(augment=True), model=ConvNet(lr=0.0), max_epochs=4)
    assert monitor.checks_done == 5 and monitor.instability_count == 0


def test_numpy_augmentation_and_an_eval_view_leave_training_unchanged() -> None:
    without = fit(None, Digits(augment=True, rng="numpy"))
    monitored = fit(StabilityMonitor(grid=SMALL_GRID, dataset=Digits(augment=False)), Digits(augment=True, rng="numpy"))
    for a, b in zip(without.parameters(), monitored.parameters(), strict=True):
        assert torch.equal(a, b)


def test_approximate_mode_is_labelled() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, stochastic_data="approximate", verbose=True)
    with pytest.warns(UserWarning, match="APPROXIMATE"):
        fit(monitor, Digits(augment=True))
    assert monitor.approximate is True and monitor.checks_done == 3


PRECISIONS = {  # precision → (dtype of the parameters and inputs, autocast dtype, tolerance on the margins)
    "bf16-true": (torch.bfloat16, None, 0.1),
    "bf16-mixed": (torch.float32, torch.bfloat16, 0.1),
    "16-true": (torch.float16, None, 0.02),
    "16-mixed": (torch.float32, torch.bfloat16, 0.1),  # on the CPU Lightning runs it as bf16-mixed (it warns)
    "32-true": (torch.float32, None, 1e-5),
    "64-true": (torch.float64, None, 1e-12),
}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_certifies_the_models_own_logits(precision: str) -> None:
    """The margins are those of the model as the precision runs it (cast inputs, or autocast on the CPU), by hand:
    δ = z_y − max_{k≠y} z_k in float64 from the logits the model computes in that precision."""
    dtype, autocast, tolerance = PRECISIONS[precision]
    monitor = StabilityMonitor(grid=SMALL_GRID, dataset=Digits(augment=False))
    model = fit(monitor, Digits(augment=False), precision=precision)
    assert monitor.checks_done == 3 and next(model.parameters()).dtype == dtype
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        logits = model(IMAGES.to(dtype)).double()
    true = logits.gather(1, TARGETS[:, None])[:, 0]
    others = logits.scatter(1, TARGETS[:, None], -torch.inf).amax(dim=1)
    margins = true - others
    assert monitor.last_pass.margins.dtype == torch.float64
    assert torch.allclose(monitor.last_pass.margins, margins, rtol=0, atol=tolerance)
    clear = margins.abs() > tolerance  # samples whose sign no rounding of the batch order can change
    assert torch.equal(monitor.last_pass.margins[clear] > 0, margins[clear] > 0)
    assert monitor.last_report.accuracy == pytest.approx(float((monitor.last_pass.margins > 0).double().mean()))


@pytest.mark.parametrize("size", [1, 2])
def test_tiny_datasets_get_a_report(size: int) -> None:
    data = TensorDataset(IMAGES[:size], TARGETS[:size])
    monitor = StabilityMonitor(grid=SMALL_GRID)
    fit(monitor, data, max_epochs=1)
    assert monitor.last_report.num_samples == size
    assert monitor.last_pass.margins.shape == (size,)


def test_an_empty_dataset_is_refused_with_a_message() -> None:
    data = TensorDataset(IMAGES[:0], TARGETS[:0])
    with pytest.raises(MisconfigurationException, match="empty"):
        fit(StabilityMonitor(grid=SMALL_GRID, dataset=data), TensorDataset(IMAGES[:4], TARGETS[:4]), max_epochs=1)


def test_a_binary_model_with_one_logit_is_certified_as_two_classes() -> None:
    binary = (TARGETS % 2).long()
    data = TensorDataset(IMAGES, binary)
    monitor = StabilityMonitor(grid=SMALL_GRID)
    model = fit(monitor, data, model=ConvNet(outputs=1))
    model.eval()
    with torch.no_grad():
        z = model(IMAGES)[:, 0].double()
    margins = torch.where(binary == 1, z, -z)  # the scores [0, z]: δ = z for class 1, −z for class 0
    assert monitor.last_report.num_classes == 2
    assert torch.allclose(monitor.last_pass.margins, margins, rtol=1e-6, atol=1e-6)
    assert monitor.last_report.accuracy == pytest.approx((margins > 0).double().mean().item(), abs=1e-12)


def test_an_unwritable_output_path_fails_at_fit_start(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    monitor = StabilityMonitor(grid=SMALL_GRID, save_margins=blocker / "margins")
    with pytest.raises(MisconfigurationException, match=str(blocker / "margins")):
        fit(monitor, Digits(augment=False))
    assert monitor.checks_done == 0


def test_two_runs_without_a_file_logger_never_share_an_output_directory(tmp_path: Path) -> None:
    directories = []
    for _ in range(2):
        monitor = StabilityMonitor(grid=SMALL_GRID, save_margins=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(monitor, Digits(augment=False), max_epochs=1, default_root_dir=str(tmp_path))
        directories.append(monitor.run_dir)
    assert directories[0] != directories[1]
    for directory in directories:
        assert len(list((directory / "margins").glob("margins_epoch=*.pt"))) == 2
