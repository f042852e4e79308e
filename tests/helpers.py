"""Shared pieces of the test suite: data, models, the Trainer settings, reference computations, recorders, logs.

Plain functions and classes, so that ``callbacks/ddp_script.py`` (a separate process, no pytest) can import them too;
the pytest fixtures built on them are in ``conftest.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from lightning_stability import GradientFlowMonitor, ParametrizationMonitor, SharpnessMonitor
from lightning_stability.dynamics import parametrization_statistics
from tests.theory.oracles import naive_cross_entropy, naive_margins

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS_DIR = REPO_ROOT / "configs"

NUM_FEATURES = 10
NUM_CLASSES = 3

# A small certify grid (the default one can take seconds per check): only faster. The oracles of
# callbacks/metric_oracles.py check the floors for whatever grid was used; test_stability also uses the default.
SMALL_GRID: dict[str, Any] = dict(
    zetas=(0.1, 0.3), tau_fractions=(1 / 16,), gammas=(1.0, 2.0), width_fractions=(1 / 8,), partition_size=512
)

# the DDP runs (callbacks/ddp_script.py): an odd N, so the DistributedSampler pads rank 1 with a duplicate
DDP_NUM_SAMPLES = 301
DDP_MARGIN_BATCH_SIZE = 64


# ---------------------------------------------------------------------------------------------------- data


def make_data(num_samples: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic 3-class data: labels from a noisy linear rule, so a tiny MLP learns part of it per epoch."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, NUM_FEATURES, generator=generator)
    scores = x[:, :NUM_CLASSES] + 0.8 * torch.randn(num_samples, NUM_CLASSES, generator=generator)
    return x, scores.argmax(dim=1)


def make_dataset(num_samples: int = 400, seed: int = 0) -> TensorDataset:
    return TensorDataset(*make_data(num_samples, seed))


def make_loader(dataset, batch_size: int = 32, shuffle: bool = False, **kwargs: Any) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **kwargs)


def subset_tensors(dataset, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = dataset.tensors
    return x[indices], y[indices]


class Stream(IterableDataset):
    """The samples of a TensorDataset as an IterableDataset without a length."""

    def __init__(self, dataset: TensorDataset) -> None:
        self.dataset = dataset

    def __iter__(self):
        return iter(zip(*self.dataset.tensors))


class DictDataset(Dataset):
    """:func:`make_data`'s samples as ``{"x": input, "y": label}`` dicts (batches the default forward cannot read)."""

    def __init__(self, num_samples: int) -> None:
        self.x, self.y = make_data(num_samples)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "y": self.y[index]}


# ---------------------------------------------------------------------------------------------------- models


class MLP(pl.LightningModule):
    """10 → hidden → 3 MLP trained with SGD on cross entropy; optional dropout and validation step."""

    def __init__(self, hidden: int = 16, lr: float = 0.2, dropout: float = 0.0) -> None:
        super().__init__()
        self.lr = lr
        layers: list[nn.Module] = [nn.Linear(NUM_FEATURES, hidden), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, NUM_CLASSES))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class DictMLP(MLP):
    """An MLP trained on :class:`DictDataset` batches."""

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self(batch["x"]), batch["y"])


class OneLayerMLP(MLP):
    """A single Linear layer: no hidden layer, one depth layer."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(NUM_FEATURES, NUM_CLASSES))


class EvaluateOnly(torch.optim.SGD):
    """SGD that evaluates the closure (loss, backward, the hooks) but never moves the weights."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if closure is None:
            raise ValueError("EvaluateOnly needs the training closure.")
        with torch.enable_grad():
            return closure()


class FrozenMLP(MLP):
    """An MLP with real gradients whose weights never move while the optimizer reports a real learning rate.

    Its sharpness is the same at every check, so ``lr · λ_max / 2`` changes only with the learning rate.
    """

    def __init__(self, lr: float, lr_factors: list[float] | None = None, **kwargs: Any) -> None:
        super().__init__(lr=lr, **kwargs)
        self.lr_factors = lr_factors

    def configure_optimizers(self) -> Any:
        optimizer = EvaluateOnly(self.parameters(), lr=self.lr)
        if self.lr_factors is None:
            return optimizer
        factors = self.lr_factors
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: factors[min(epoch, len(factors) - 1)])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


# Planted degeneracies of an MLP's hidden layer (the ParametrizationMonitor and its kernels must find them)
PLANTED_HIDDEN = 8
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
    model = MLP(hidden=PLANTED_HIDDEN, lr=lr)
    plant(model.net)
    return model


def first_layer_statistics(model: MLP, inputs: torch.Tensor):
    """:func:`parametrization_statistics` of the MLP's hidden layer on ``inputs``, by hand."""
    first, last = model.net[0], model.net[-1]
    with torch.no_grad():
        preactivations = first(inputs)
    return parametrization_statistics(first.weight, first.bias, last.weight, preactivations, "relu")


# ---------------------------------------------------------------------------------------------------- the Trainer


def trainer_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        deterministic=True,
        num_sanity_val_steps=0,
    )
    kwargs.update(overrides)
    return kwargs


def fit(
    callbacks: list[pl.Callback],
    model: pl.LightningModule | None = None,
    data: DataLoader | Dataset | int = 400,
    *,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int | None = None,
    val_loader: DataLoader | None = None,
    ckpt_path: str | Path | None = None,
    **overrides: Any,
) -> pl.Trainer:
    """A ``pl.Trainer(**trainer_kwargs(callbacks=callbacks, **overrides))`` fitted, and returned.

    Args:
        model: default a fresh ``MLP()``, built after ``pl.seed_everything(seed)`` (when ``seed`` is given).
        data: a loader, used as given; a dataset, or a number of samples of :func:`make_dataset`, in a
            :func:`make_loader` of ``batch_size`` (shuffled with ``shuffle``).
    """
    if seed is not None:
        pl.seed_everything(seed)
    if model is None:
        model = MLP()
    if isinstance(data, int):
        data = make_dataset(data)
    loader = data if isinstance(data, DataLoader) else make_loader(data, batch_size=batch_size, shuffle=shuffle)
    trainer = pl.Trainer(**trainer_kwargs(callbacks=callbacks, **overrides))
    trainer.fit(model, loader, val_loader, ckpt_path=ckpt_path)
    return trainer


def epoch_checkpoints(dirpath: Path, **kwargs: Any) -> ModelCheckpoint:
    """A ModelCheckpoint that keeps one ``epoch=E.ckpt`` per training epoch in ``dirpath``."""
    return ModelCheckpoint(dirpath=dirpath, filename="{epoch}", every_n_epochs=1, save_top_k=-1, **kwargs)


def all_monitors(
    num_samples: int = 64, every_n_steps: int = 3
) -> tuple[SharpnessMonitor, ParametrizationMonitor, GradientFlowMonitor]:
    return (
        SharpnessMonitor(num_samples=num_samples),
        ParametrizationMonitor(num_samples=num_samples),
        GradientFlowMonitor(every_n_steps=every_n_steps),
    )


# ---------------------------------------------------------------------------------------------------- references


def hand_margin_pass(
    module: nn.Module, dataset: TensorDataset, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(targets, margins, per-sample losses)`` of ``module`` over ``dataset``, in eval mode, by hand.

    The batches are cut like the monitor's sequential loader so that float32 logits are bit-identical; the margins
    ``z_y − max_{j≠y} z_j`` and cross entropies come from the plain-Python / 50-digit oracles of
    ``tests/theory/oracles.py``, not from ``lightning_stability.theory``.
    """
    x, y = dataset.tensors
    was_training = module.training
    module.eval()
    with torch.no_grad():
        logits = torch.cat([module(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    module.train(was_training)
    margins = torch.tensor(naive_margins(logits, y), dtype=torch.float64)
    return y, margins, torch.tensor(naive_cross_entropy(logits, y), dtype=torch.float64)


def explicit_hessian(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The full Hessian of ``cross_entropy(model(inputs), targets)`` in the flattened trainable parameters."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    flat = torch.cat([p.detach().reshape(-1) for _, p in named])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for name, p in named:
            params[name] = vector[start : start + p.numel()].reshape(p.shape)
            start += p.numel()
        return nn.functional.cross_entropy(functional_call(model, params, (inputs,)), targets)

    was_training = model.training
    model.eval()
    hessian = torch.autograd.functional.hessian(loss, flat)
    model.train(was_training)
    return hessian


# ---------------------------------------------------------------------------------------------------- recorders


class Recorder(pl.Callback):
    """After a StabilityMonitor: copies what it computed at every check (train start, epoch end), and the weights
    the check saw (``state``)."""

    def __init__(self, monitor) -> None:
        self.monitor = monitor
        self.records: list[dict[str, Any]] = []
        self._seen = 0

    def _record(self, trainer, hook: str) -> None:
        if self.monitor.checks_done == self._seen:
            return
        assert self.monitor.checks_done == self._seen + 1, "more than one check between two hooks"
        self._seen = self.monitor.checks_done
        self.records.append(
            dict(
                hook=hook,
                epoch=trainer.current_epoch,
                metrics=dict(self.monitor.last_metrics),
                margins=self.monitor.last_pass.margins.clone(),
                state={k: v.detach().clone() for k, v in trainer.lightning_module.state_dict().items()},
                checks_done=self.monitor.checks_done,
                instability_count=self.monitor.instability_count,
                consecutive_instabilities=self.monitor.consecutive_instabilities,
            )
        )

    def on_fit_start(self, trainer, pl_module) -> None:
        self._seen = self.monitor.checks_done  # after a checkpoint restored the monitor's state

    def on_train_start(self, trainer, pl_module) -> None:
        self._record(trainer, "train_start")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._record(trainer, "epoch_end")


class MonitorRecorder(pl.Callback):
    """After the dynamics monitors: copies each monitor's ``last_metrics`` whenever its ``checks_done`` grew."""

    def __init__(self, *monitors: Any) -> None:
        self.monitors = monitors
        self.records: dict[str, list[dict[str, float]]] = {type(m).__name__: [] for m in monitors}
        self._seen: dict[str, int] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seen = {type(m).__name__: m.checks_done for m in self.monitors}

    def _record(self) -> None:
        for monitor in self.monitors:
            name = type(monitor).__name__
            if monitor.checks_done != self._seen[name]:
                assert monitor.checks_done == self._seen[name] + 1, f"{name} checked twice between two hooks"
                self._seen[name] = monitor.checks_done
                self.records[name].append(dict(monitor.last_metrics))

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self._record()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record()


# ---------------------------------------------------------------------------------------------------- logs


def csv_rows(log_dir: str | Path, column: str | None = None) -> list[dict[str, str]]:
    """The rows of ``log_dir/metrics.csv`` (a CSVLogger's), only those with a value in ``column`` if given."""
    with open(Path(log_dir) / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows if column is None else [row for row in rows if row.get(column)]


def tensorboard_events(log_dir: str | Path):
    """Every scalar, histogram and image event in the TensorBoard files of ``log_dir``, loaded."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0}).Reload()


class RecordingLogger(pl.loggers.Logger):
    """A logger that keeps every ``log_metrics`` call as ``(step, metrics)`` (in memory, for assertions)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def at_step(self, step: int) -> dict[str, float]:
        """Every value logged at ``step``, later calls overriding earlier ones."""
        merged: dict[str, float] = {}
        for called_step, metrics in self.calls:
            if called_step == step:
                merged.update({name: float(value) for name, value in metrics.items()})
        return merged
