"""The StabilityMonitor in setups a new user brings (issue 27): a train/validation split by sampler, a second
``fit`` of the same monitor, weights that diverge to NaN, a one-logit binary model trained with
``BCEWithLogitsLoss``, Hugging Face–style outputs, label smoothing and ``ddp_spawn``. The models and data
(scikit-learn's iris, moons and blobs) are new to the suite; every accuracy and loss is recomputed here from the
model's outputs in eval mode."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from sklearn.datasets import load_iris, make_blobs, make_moons
from torch import nn
from torch.utils.data import DataLoader, Sampler, Subset, SubsetRandomSampler, TensorDataset

from lightning_stability import StabilityMonitor

from ..helpers import SMALL_GRID

QUIET = dict(accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False, logger=False)


def trainer(callbacks: list, **kwargs) -> pl.Trainer:
    return pl.Trainer(**{**QUIET, "enable_checkpointing": False, "max_epochs": 2, **kwargs}, callbacks=callbacks)


def iris() -> TensorDataset:
    inputs, labels = load_iris(return_X_y=True)
    inputs = (inputs - inputs.mean(0)) / inputs.std(0)
    return TensorDataset(torch.tensor(inputs, dtype=torch.float32), torch.tensor(labels))


class IrisNet(pl.LightningModule):
    """4 → 12 → 3 with LayerNorm and GELU, plain SGD."""

    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 12), nn.LayerNorm(12), nn.GELU(), nn.Linear(12, 3))
        self.lr = lr

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, labels = batch
        return nn.functional.cross_entropy(self(inputs), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def by_hand(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None):
    """Accuracy (a margin of 0 is an error) and cross entropy of ``model`` in eval mode, float64, weighted."""
    model.eval()
    with torch.no_grad():
        logits = model(inputs).double()
    model.train()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
    correct = (true > others).double()
    losses = nn.functional.cross_entropy(logits, labels, reduction="none")
    mu = torch.ones_like(losses) if weights is None else weights.double()
    return float((mu * correct).sum() / mu.sum()), float((mu * losses).sum() / mu.sum())


# ---------------------------------------------------------------------------------------------------- samplers


def test_a_split_by_subset_random_sampler_certifies_the_train_part_only(caplog: pytest.LogCaptureFixture) -> None:
    pl.seed_everything(1)
    data = iris()
    train = torch.randperm(150, generator=torch.Generator().manual_seed(5))[:100]
    model = IrisNet()
    monitor = StabilityMonitor(grid=SMALL_GRID, verbose=True)
    trainer([monitor]).fit(model, DataLoader(data, batch_size=16, sampler=SubsetRandomSampler(train.tolist())))

    assert torch.equal(monitor.last_pass.indices, torch.sort(train).values)
    inputs, labels = data.tensors
    accuracy, loss = by_hand(model, inputs[train], labels[train])
    assert monitor.last_report.accuracy == pytest.approx(accuracy, abs=1e-12)
    assert monitor.last_metrics["stability/loss"] == pytest.approx(loss, rel=1e-6)
    assert monitor.last_report.num_samples == 100
    assert "100 of 150 samples of the dataset: the training sampler's indices." in caplog.text


def test_an_index_list_with_repeats_weights_each_sample_by_its_count() -> None:
    pl.seed_everything(2)
    data = iris()
    listed = list(range(0, 150, 3)) + list(range(0, 30, 3))  # samples 0, 3, …, 27 twice per epoch
    model = IrisNet()
    monitor = StabilityMonitor(grid=SMALL_GRID, check_at_start=False)
    trainer([monitor], max_epochs=1).fit(model, DataLoader(data, batch_size=10, sampler=listed))

    assert monitor.weights_source == "sampler indices"
    chosen = torch.arange(0, 150, 3)
    counts = torch.where(chosen < 30, 2.0, 1.0)
    inputs, labels = data.tensors
    accuracy, loss = by_hand(model, inputs[chosen], labels[chosen], counts)
    assert torch.equal(monitor.last_pass.indices, chosen)
    assert monitor.last_report.accuracy == pytest.approx(accuracy, abs=1e-12)
    assert monitor.last_metrics["stability/loss"] == pytest.approx(loss, rel=1e-6)


class EveryOtherSampler(Sampler[int]):
    """A sampler of the user's own: the monitor cannot know which samples it draws."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __iter__(self):
        return iter(range(0, self.length, 2))

    def __len__(self) -> int:
        return (self.length + 1) // 2


def test_a_sampler_of_unknown_support_is_refused_before_training_and_dataset_fixes_it() -> None:
    data = iris()
    monitor = StabilityMonitor(grid=SMALL_GRID)
    fit = trainer([monitor])
    with pytest.raises(MisconfigurationException, match=r"EveryOtherSampler.*Pass `dataset=`.*`weights=`"):
        fit.fit(IrisNet(), DataLoader(data, batch_size=16, sampler=EveryOtherSampler(150)))
    assert fit.global_step == 0 and monitor.checks_done == 0

    model = IrisNet()
    told = StabilityMonitor(grid=SMALL_GRID, dataset=Subset(data, range(0, 150, 2)))
    trainer([told], max_epochs=1).fit(model, DataLoader(data, batch_size=16, sampler=EveryOtherSampler(150)))
    inputs, labels = data.tensors
    assert told.last_report.accuracy == pytest.approx(by_hand(model, inputs[::2], labels[::2])[0], abs=1e-12)


# ---------------------------------------------------------------------------------------------------- two fits


def test_a_second_fit_is_checked_from_its_start_and_keeps_the_models_sample_statistics() -> None:
    pl.seed_everything(3)
    data = iris()
    model = IrisNet(lr=0.5)
    monitor = StabilityMonitor(grid=SMALL_GRID, stop_on_instability=True, tol=0.5)
    trainer([monitor], max_epochs=3).fit(model, DataLoader(data, batch_size=16, shuffle=True))
    assert monitor.checks_done == 4  # before training and after epochs 0, 1, 2
    first_report = monitor.last_report

    model.lr = 0.05  # notebook style: lower the learning rate, fit again with a new Trainer
    trainer([monitor], max_epochs=2).fit(model, DataLoader(data, batch_size=16, shuffle=True))
    assert monitor.checks_done == 3 and monitor.last_checked_epoch == 1
    accuracy, loss = by_hand(model, *data.tensors)
    assert monitor.last_report is not first_report
    assert monitor.last_report.accuracy == pytest.approx(accuracy, abs=1e-12)
    assert monitor.last_metrics["stability/loss"] == pytest.approx(loss, rel=1e-6)
    assert [check[0] for check in monitor.check_series] == [-1, 0, 1]  # this fit's checks only
    assert int(monitor.sample_dynamics().checks.max()) == 7  # the same module: its samples' statistics go on

    other = IrisNet()
    trainer([monitor], max_epochs=1).fit(other, DataLoader(data, batch_size=16))
    assert monitor.checks_done == 2
    assert int(monitor.sample_dynamics().checks.max()) == 2  # another module: statistics start afresh
    assert monitor.last_report.accuracy == pytest.approx(by_hand(other, *data.tensors)[0], abs=1e-12)


# ---------------------------------------------------------------------------------------------------- diverged weights


class Diverging(IrisNet):
    """Its weights blow up to NaN at the end of epoch 1 (after the monitor's check of that epoch)."""

    def on_train_epoch_end(self) -> None:
        if self.current_epoch == 1:
            with torch.no_grad():
                self.net[0].weight.fill_(float("nan"))


def test_weights_that_diverge_stop_training_and_keep_every_output(tmp_path: Path) -> None:
    pl.seed_everything(4)
    logger = CSVLogger(tmp_path, name="run", version=0)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1)
    monitor = StabilityMonitor(grid=SMALL_GRID, save_margins=True)
    fit = pl.Trainer(**{**QUIET, "logger": logger}, max_epochs=6, callbacks=[monitor, checkpoints])
    with pytest.warns(UserWarning, match=r"not finite \(NaN or inf\) every one of the 150 sample\(s\) after epoch 2"):
        fit.fit(Diverging(), DataLoader(iris(), batch_size=16, shuffle=True))  # returns: no exception
    assert fit.current_epoch == 3 and "not finite" in monitor.stop_reason
    assert monitor.checks_done == 3  # before training, after epochs 0 and 1
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt"]
    saved = torch.load(tmp_path / "ckpt" / "epoch=2.ckpt", weights_only=False)["callbacks"][monitor.state_key]
    assert "not finite" in saved["stop_reason"]
    run = Path(logger.log_dir)
    assert len(list((run / "margins").glob("*.pt"))) == 3
    assert (run / "samples.csv").is_file()


# ---------------------------------------------------------------------------------------------------- binary models


def moons(labels_shape: str = "flat", soft: bool = False) -> TensorDataset:
    inputs, labels = make_moons(200, noise=0.2, random_state=0)
    targets = torch.tensor(labels, dtype=torch.float32)
    if soft:
        targets = 0.1 + 0.8 * targets  # label-smoothed binary targets
    if labels_shape == "column":
        targets = targets[:, None]
    return TensorDataset(torch.tensor(inputs, dtype=torch.float32), targets)


class MoonsNet(pl.LightningModule):
    """2 → 16 → 1: one logit, trained with BCEWithLogitsLoss on float labels."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
        self.loss = nn.BCEWithLogitsLoss()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, labels = batch
        return self.loss(self(inputs).reshape(labels.shape), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.02)


@pytest.mark.parametrize("labels_shape", ["flat", "column"])
def test_a_one_logit_binary_model_with_float_labels_is_certified_as_two_classes(labels_shape: str) -> None:
    pl.seed_everything(5)
    data, model = moons(labels_shape), MoonsNet()
    monitor = StabilityMonitor(grid=SMALL_GRID)
    trainer([monitor]).fit(model, DataLoader(data, batch_size=32, shuffle=True))

    inputs, labels = data.tensors
    labels = labels.reshape(-1).double()
    model.eval()
    with torch.no_grad():
        z = model(inputs).reshape(-1).double()
    margins = torch.where(labels == 1, z, -z)  # scores [0, z]: a class-1 sample's margin is z, a class-0 one's −z
    assert monitor.last_report.num_classes == 2
    assert monitor.last_report.accuracy == pytest.approx(float((margins > 0).double().mean()), abs=1e-12)
    bce = nn.functional.binary_cross_entropy_with_logits(z, labels)
    assert monitor.last_metrics["stability/loss"] == pytest.approx(float(bce), rel=1e-6)


def test_soft_binary_labels_are_refused_before_training_with_a_forward_fn_example() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, check_at_start=False)
    fit = trainer([monitor])
    with pytest.raises(MisconfigurationException, match=r"soft.*such as 0\.1.*forward_fn=lambda module, batch"):
        fit.fit(MoonsNet(), DataLoader(moons(soft=True), batch_size=32))
    assert fit.global_step == 0


# ---------------------------------------------------------------------------------------------------- model outputs


def blobs() -> TensorDataset:
    inputs, labels = make_blobs(120, centers=4, n_features=5, cluster_std=3.0, random_state=2)
    return TensorDataset(torch.tensor(inputs, dtype=torch.float32), torch.tensor(labels))


class BlobsNet(pl.LightningModule):
    """5 → 4 logits, returned as ``{"logits": …}``, as an object with ``.logits`` or under another key."""

    def __init__(self, wrap: str) -> None:
        super().__init__()
        self.head = nn.Linear(5, 4)
        self.wrap = wrap

    def forward(self, inputs: torch.Tensor):
        logits = self.head(inputs)
        if self.wrap == "dict":
            return {"logits": logits, "hidden": inputs}
        if self.wrap == "attribute":
            return SimpleNamespace(logits=logits, loss=None)
        return {"scores": logits}

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, labels = batch
        return nn.functional.cross_entropy(self.head(inputs), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


@pytest.mark.parametrize("wrap", ["dict", "attribute"])
def test_outputs_with_a_logits_key_or_attribute_are_read_by_the_default_forward(wrap: str) -> None:
    pl.seed_everything(6)
    data, model = blobs(), BlobsNet(wrap)
    monitor = StabilityMonitor(grid=SMALL_GRID)
    trainer([monitor]).fit(model, DataLoader(data, batch_size=24, shuffle=True))
    accuracy, loss = by_hand(model.head, *data.tensors)
    assert monitor.last_report.accuracy == pytest.approx(accuracy, abs=1e-12)
    assert monitor.last_metrics["stability/loss"] == pytest.approx(loss, rel=1e-6)


def test_other_outputs_get_a_working_forward_fn_example_not_a_forward_fn_complaint() -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    with pytest.raises(MisconfigurationException) as raised:
        trainer([monitor]).fit(BlobsNet("scores"), DataLoader(blobs(), batch_size=24))
    message = str(raised.value)
    assert "default forward" in message and "keys ['scores']" in message
    assert "`forward_fn` must return" not in message
    example = message.split("e.g. `")[1].split("`.")[0]
    assert example == 'forward_fn=lambda module, batch: (module(batch[0])["scores"], batch[1])'
    # the example works as written
    forward_fn = eval(example.removeprefix("forward_fn="))
    model = BlobsNet("scores")
    working = StabilityMonitor(grid=SMALL_GRID, forward_fn=forward_fn)
    trainer([working], max_epochs=1).fit(model, DataLoader(blobs(), batch_size=24))
    assert working.last_report.accuracy == pytest.approx(by_hand(model.head, *blobs().tensors)[0], abs=1e-12)


# ---------------------------------------------------------------------------------------------------- other losses


class SmoothedIrisNet(IrisNet):
    def __init__(self) -> None:
        super().__init__()
        self.loss = nn.CrossEntropyLoss(label_smoothing=0.1)

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, labels = batch
        return self.loss(self(inputs), labels)


def test_label_smoothing_gets_one_note_and_the_plain_cross_entropy_is_reported() -> None:
    pl.seed_everything(7)
    data, model = iris(), SmoothedIrisNet()
    monitor = StabilityMonitor(grid=SMALL_GRID)
    with pytest.warns(UserWarning, match=r"label_smoothing=0\.1.*plain cross entropy") as caught:
        trainer([monitor]).fit(model, DataLoader(data, batch_size=16, shuffle=True))
    assert sum("label_smoothing" in str(warning.message) for warning in caught) == 1
    assert monitor.last_metrics["stability/loss"] == pytest.approx(by_hand(model, *data.tensors)[1], rel=1e-6)


# ---------------------------------------------------------------------------------------------------- ddp_spawn


def test_ddp_spawn_says_where_the_results_are_and_a_checkpoint_gives_them_back(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID, save_margins=True)
    logger = CSVLogger(tmp_path, name="run", version=0)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt")
    fit = pl.Trainer(**{**QUIET, "logger": logger}, strategy="ddp_spawn", max_epochs=2, callbacks=[monitor, checkpoint])
    fit.fit(IrisNet(), DataLoader(iris(), batch_size=16))
    assert "worker processes the strategy started" in capfd.readouterr().err
    assert monitor.checks_done == 0 and monitor.last_report is None  # as the warning and docs/guide.md say
    assert len(list((tmp_path / "run" / "version_0" / "margins").glob("*.pt"))) == 3  # the worker wrote them

    # docs/guide.md, "Several processes started by the strategy": a checkpoint's callback state gives them back
    reader = StabilityMonitor(grid=SMALL_GRID, save_margins=True)
    reader.load_state_dict(torch.load(checkpoint.best_model_path, weights_only=False)["callbacks"][reader.state_key])
    assert reader.checks_done == 3 and reader.instability_count == len(reader.instability_epochs)
    assert len(reader.sample_dynamics()) == 150 and int(reader.sample_dynamics().checks.min()) == 3
