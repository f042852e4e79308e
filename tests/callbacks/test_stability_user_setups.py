"""The StabilityMonitor in setups the package did not design: a TransformerEncoder on tokens with dict batches and
−100 labels (``import lightning as L``), a weighted sampler on tabular data, NaN at a later check, a schedule that
misses the last epoch, two monitors, ``fast_dev_run``, probability outputs, exact ties. The expected numbers are
recomputed here from the model's logits."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from sklearn.datasets import load_wine
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset, WeightedRandomSampler

from lightning_stability import StabilityMonitor

from ..helpers import SMALL_GRID

QUIET = dict(accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False, logger=False)


def trainer(callbacks: list, **kwargs) -> L.Trainer:
    return L.Trainer(**{**QUIET, "enable_checkpointing": False, "max_epochs": 2, **kwargs}, callbacks=callbacks)


# ---------------------------------------------------------------------------------------------------- tokens


class Tokens(Dataset):
    """Random token sequences; the label is the most frequent of three token groups, −100 for every fifth."""

    def __init__(self, num: int = 60, length: int = 8, vocabulary: int = 20) -> None:
        generator = torch.Generator().manual_seed(3)
        self.ids = torch.randint(0, vocabulary, (num, length), generator=generator)
        labels = torch.stack([(self.ids % 3 == k).sum(1) for k in range(3)], 1).argmax(1)
        labels[::5] = -100
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.labels[index]}


class TextClassifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 16)
        layer = nn.TransformerEncoderLayer(16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(input_ids)).mean(1))

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch["input_ids"]), batch["labels"])  # ignore_index=-100

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def by_dict(module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return module(batch["input_ids"]), batch["labels"]


def test_a_transformer_on_dict_batches_with_ignored_labels(caplog: pytest.LogCaptureFixture) -> None:
    L.seed_everything(0)
    data, model = Tokens(), TextClassifier()
    monitor = StabilityMonitor(forward_fn=by_dict, grid=SMALL_GRID, verbose=True)
    trainer([monitor]).fit(model, DataLoader(data, batch_size=16, shuffle=True))

    kept = data.labels != -100
    model.eval()
    with torch.no_grad():
        logits = model(data.ids).double()
    labels = data.labels[kept]
    true = logits[kept].gather(1, labels[:, None]).squeeze(1)
    others = logits[kept].scatter(1, labels[:, None], float("-inf")).max(1).values
    report = monitor.last_report
    assert report.num_samples == int(kept.sum()) == 48
    assert report.accuracy == pytest.approx(float((true - others > 0).double().mean()), abs=1e-12)
    loss = nn.functional.cross_entropy(logits[kept], labels)
    assert monitor.last_metrics["stability/loss"] == pytest.approx(float(loss), rel=1e-9)
    assert monitor.last_pass.ignored == 12
    lines = [
        message
        for message in (record.getMessage() for record in caplog.records)
        if message.startswith(("[StabilityMonitor] epoch", "[StabilityMonitor] before training"))
    ]
    assert len(lines) == 3 and all(
        line.endswith("; 12 samples ignored (labelled ignore_index=-100 or of weight zero).") for line in lines
    )
    assert monitor.checks_done == 3


def test_weight_zero_samples_are_outside_the_label_check_too() -> None:
    """``weights=(labels != -100)`` with ``ignore_index=None``: the −100 samples have weight zero, so their labels
    are never checked and they are not certified."""
    L.seed_everything(0)
    data = Tokens()
    monitor = StabilityMonitor(
        forward_fn=by_dict, grid=SMALL_GRID, ignore_index=None, weights=(data.labels != -100).double()
    )
    trainer([monitor], max_epochs=1).fit(TextClassifier(), DataLoader(data, batch_size=16))
    assert monitor.last_report.num_samples == 48 and monitor.last_pass.ignored == 12


def test_labels_outside_the_classes_stop_the_fit_at_start_naming_them() -> None:
    data = Tokens()
    data.labels[7] = 3
    monitor = StabilityMonitor(forward_fn=by_dict, grid=SMALL_GRID, check_at_start=False)
    fit = trainer([monitor])
    with pytest.raises(MisconfigurationException, match=r"3 classes \[0, 2\].*\{7: 3\}; `ignore_index=-100`"):
        fit.fit(TextClassifier(), DataLoader(data, batch_size=16))
    assert fit.current_epoch == 0 and monitor.checks_done == 0


# ---------------------------------------------------------------------------------------------------- sampler weights


def wine() -> TensorDataset:
    x, y = load_wine(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32)
    return TensorDataset((x - x.mean(0)) / x.std(0), torch.tensor(y))


class Tabular(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(13, 8), nn.Tanh(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


@pytest.mark.parametrize("option", [None, "uniform"])
def test_a_weighted_sampler_sets_the_weights_unless_overridden(
    option: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    L.seed_everything(0)
    data = wine()
    labels = data.tensors[1]
    weights = (1.0 / torch.bincount(labels).double())[labels] * (1 + (torch.arange(len(labels)) % 4 == 0))
    sampler = WeightedRandomSampler(weights, num_samples=len(labels), generator=torch.Generator().manual_seed(0))
    model = Tabular()
    monitor = StabilityMonitor(grid=SMALL_GRID, weights=option, verbose=True)
    trainer([monitor]).fit(model, DataLoader(data, batch_size=32, sampler=sampler))
    said = "Weights μ follow the training loader's WeightedRandomSampler"
    assert (said in caplog.text) == (option is None)

    model.eval()
    with torch.no_grad():
        losses = nn.functional.cross_entropy(model(data.tensors[0]).double(), labels, reduction="none")
    mu = weights / weights.sum() if option is None else torch.full_like(weights, 1 / len(weights))
    assert monitor.last_metrics["stability/loss"] == pytest.approx(float((mu * losses).sum()), rel=1e-9)
    assert monitor.weights_source == ("sampler" if option is None else "uniform")


# ---------------------------------------------------------------------------------------------------- NaN, schedule


def test_nan_at_a_later_check_stops_like_check_finite_and_keeps_every_output(tmp_path: Path) -> None:
    def diverging(module: nn.Module, batch):
        x, y = batch
        logits = module(x)
        if module.current_epoch >= 1:
            logits = logits.clone()
            logits[3] = float("nan")
        return logits, y

    L.seed_everything(0)
    logger = CSVLogger(tmp_path, name="run", version=0)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1)
    monitor = StabilityMonitor(forward_fn=diverging, grid=SMALL_GRID, save_margins=True)
    fit = L.Trainer(**{**QUIET, "logger": logger}, max_epochs=5, callbacks=[monitor, checkpoints])
    with pytest.warns(UserWarning, match=r"StabilityMonitor: the model's class scores are not finite .* \(samples 3\)"):
        fit.fit(Tabular(), DataLoader(wine(), batch_size=32))  # returns: no exception
    assert fit.current_epoch == 2 and "not finite" in monitor.stop_reason
    assert monitor.checks_done == 2  # before training and after epoch 0
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=0.ckpt", "epoch=1.ckpt"]
    run = Path(logger.log_dir)
    assert len(list((run / "margins").glob("*.pt"))) == 2
    assert (run / "margins" / "samples.csv").is_file() or (run / "samples.csv").is_file()


def test_the_final_weights_are_checked_when_the_last_epoch_is_not_scheduled() -> None:
    L.seed_everything(0)
    model, monitor = Tabular(), StabilityMonitor(every_n_epochs=3, grid=SMALL_GRID)
    trainer([monitor], max_epochs=4).fit(model, DataLoader(wine(), batch_size=32))
    assert monitor.checks_done == 3 and monitor.last_checked_epoch == 3  # start, epoch 2, the final epoch 3
    x, y = wine().tensors
    model.eval()
    with torch.no_grad():
        predicted = model(x).argmax(1)
    assert monitor.last_report.accuracy == pytest.approx(float((predicted == y).double().mean()), abs=1e-12)


def test_a_schedule_that_never_checks_is_said_at_fit_start() -> None:
    monitor = StabilityMonitor(every_n_epochs=5, check_at_start=False, grid=SMALL_GRID)
    with pytest.warns(UserWarning, match=r"with max_epochs=2 and every_n_epochs=5 no scheduled check runs"):
        trainer([monitor]).fit(Tabular(), DataLoader(wine(), batch_size=32))
    assert monitor.checks_done == 1 and monitor.last_checked_epoch == 1


def test_two_monitors_of_one_kind_are_refused_before_training() -> None:
    first, second = StabilityMonitor(), StabilityMonitor(weights="balanced")
    fit = trainer([first, second])
    with pytest.raises(MisconfigurationException, match=r"the Trainer has 2 StabilityMonitors"):
        fit.fit(Tabular(), DataLoader(wine(), batch_size=32))
    assert first.checks_done == second.checks_done == 0


def test_fast_dev_run_writes_no_file_and_says_the_pass_is_short(tmp_path: Path) -> None:
    monitor = StabilityMonitor(save_margins=True, check_data=True, grid=SMALL_GRID, batch_size=50)
    logger = TensorBoardLogger(tmp_path, name="smoke")
    fit = L.Trainer(**{**QUIET, "logger": logger}, fast_dev_run=True, callbacks=[monitor])
    with pytest.warns(UserWarning, match=r"fast_dev_run: every margin pass covers only the first 1 batch"):
        fit.fit(Tabular(), DataLoader(wine(), batch_size=32))
    assert monitor.last_report.num_samples == 50  # one margin batch of the 178 samples
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.csv"))


# ---------------------------------------------------------------------------------------------------- outputs


def test_probabilities_are_noted_and_log_probabilities_are_the_logits() -> None:
    x, y = wine().tensors
    reports = {}
    for kind, transform in (("logits", lambda z: z), ("log", lambda z: z.log_softmax(1))):
        L.seed_everything(0)
        monitor = StabilityMonitor(grid=SMALL_GRID, forward_fn=lambda m, b, t=transform: (t(m(b[0])), b[1]))
        trainer([monitor], max_epochs=1).fit(Tabular(), DataLoader(wine(), batch_size=32))
        reports[kind] = monitor.last_metrics
    assert reports["log"]["stability/accuracy"] == reports["logits"]["stability/accuracy"]
    assert reports["log"]["stability/loss"] == pytest.approx(reports["logits"]["stability/loss"], rel=1e-6)

    monitor = StabilityMonitor(grid=SMALL_GRID, forward_fn=lambda m, b: (m(b[0]).softmax(1), b[1]))
    with pytest.warns(UserWarning, match=r"look like probabilities .* Return the logits"):
        trainer([monitor], max_epochs=1).fit(Tabular(), DataLoader(wine(), batch_size=32))


def test_many_exact_ties_are_noted_once() -> None:
    def coarse(module: nn.Module, batch):
        x, y = batch
        return module(x).to(torch.bfloat16).round(), y  # bf16 and whole numbers: many equal scores

    monitor = StabilityMonitor(grid=SMALL_GRID, forward_fn=coarse)
    with pytest.warns(UserWarning, match=r"margins are exactly 0 .* Ties count as errors") as caught:
        trainer([monitor]).fit(Tabular(), DataLoader(wine(), batch_size=32))
    assert sum("exactly 0" in str(w.message) for w in caught) == 1
