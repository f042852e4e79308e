"""StabilityMonitor: certify the training accuracy's stability at epoch end (THEORY.md §1–§8)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .. import theory
from ..collection import (
    ForwardFn,
    MarginCollector,
    MarginPass,
    default_forward,
    margin_dataloader,
    positioned_loader,
    run_margin_pass,
)
from ..reporting import log_figure, log_histogram, log_out_of_epoch, save_margin_file
from ..theory.margins import SortedMargins
from .data_check import run_data_check

__all__ = ["StabilityMonitor"]

Weights = Literal["uniform", "balanced"] | Tensor


class StabilityMonitor(Callback):
    r"""Certify, at the end of training epochs, whether the training accuracy reached is stable.

    Every ``every_n_epochs`` training epochs (and once when training starts) the monitor runs an exact margin
    pass over the **whole training set** (model in eval mode, ``torch.inference_mode()``, the trainer's precision
    context, a fixed sequential order; under DDP every rank evaluates a shard and the results are gathered),
    calls :func:`lightning_stability.theory.certify` and logs, under ``stability/``, the accuracy, the loss and
    its margin sandwich, the Theorem 0/A/B accuracy floors with their parameters, the good/bad masses, margin
    quantiles, flip masses and the instability flags of THEORY.md §8. An *instability event* is a check whose
    training loss fell while its training accuracy fell by more than ``tol`` since the previous check.

    Args:
        every_n_epochs: run the check after every n-th training epoch.
        check_at_start: also check once when training starts (the reference for the first epoch).
        dataset: the samples to certify (e.g. the training set with evaluation transforms); default: the dataset
            behind ``trainer.train_dataloader``, re-wrapped in a sequential loader with its ``collate_fn``.
        dataloader: a finite loader over the samples to certify, iterated as given (samples are identified by
            their position in it); not with DDP, where ``dataset`` lets the monitor shard the data.
        batch_size: batch size of the margin pass; default ``max(256, 4 × the training batch size)``.
        num_workers: workers of the margin loader.
        forward_fn: ``forward_fn(pl_module, batch) -> (logits [B, K], targets [B])``; default
            ``(pl_module(x), y)`` for ``(x, y)`` batches.
        weights: sample weights ``μ``: ``"uniform"``, ``"balanced"`` (each class gets the same total mass) or a
            tensor with one non-negative weight per sample of the dataset.
        tol: accuracy drop (absolute) tolerated before a loss decrease counts as an instability event.
        stop_on_instability: stop training after ``patience`` consecutive instability events.
        patience: number of consecutive instability events that stop training.
        quantiles: margin quantiles to log.
        save_margins: a directory (or ``True`` for ``<log_dir>/margins``); every check writes its indices, targets,
            margins, losses and report as a ``.pt`` file (read by ``lightning-stability report``).
        log_histogram: log ``stability/margins`` as a TensorBoard histogram at every check.
        log_figure: log a TensorBoard figure of the empirical ``F`` against the Theorem A and B envelopes
            (needs matplotlib).
        grid: overrides of :class:`lightning_stability.theory.CertificateGrid` passed to ``certify``.
        verbose: print a one-line summary of every check (rank zero).
        check_data: once at fit start, look for small isolated clusters in the training inputs (THEORY.md §9,
            :func:`lightning_stability.theory.data_clusters`) with the rows of the model's first ``nn.Linear`` as
            extra directions; logs ``stability/data/*`` and writes ``data_clusters.pt``/``.txt`` (witness
            indices) to the log directory. ``True`` uses the defaults; a dict passes keyword arguments.

    Example::

        >>> from pytorch_lightning import Trainer
        >>> from lightning_stability import StabilityMonitor
        >>> monitor = StabilityMonitor(every_n_epochs=1, stop_on_instability=True, patience=2)
        >>> trainer = Trainer(callbacks=[monitor], max_epochs=3)  # doctest: +SKIP
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        check_at_start: bool = True,
        dataset: Dataset | None = None,
        dataloader: DataLoader | None = None,
        batch_size: int | None = None,
        num_workers: int = 0,
        forward_fn: ForwardFn | None = None,
        weights: Weights = "uniform",
        tol: float = 0.0,
        stop_on_instability: bool = False,
        patience: int = 1,
        quantiles: tuple[float, ...] = (0.01, 0.05, 0.5),
        save_margins: str | Path | bool | None = None,
        log_histogram: bool = True,
        log_figure: bool = False,
        grid: dict[str, Any] | None = None,
        verbose: bool = False,
        check_data: bool | dict[str, Any] = False,
    ) -> None:
        super().__init__()
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise MisconfigurationException(f"`every_n_epochs` must be a positive integer, got {every_n_epochs!r}.")
        if dataset is not None and dataloader is not None:
            raise MisconfigurationException("Pass either `dataset=` or `dataloader=` to StabilityMonitor, not both.")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise MisconfigurationException(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise MisconfigurationException(f"`num_workers` must be a non-negative integer, got {num_workers!r}.")
        if not isinstance(patience, int) or patience < 1:
            raise MisconfigurationException(f"`patience` must be a positive integer, got {patience!r}.")
        if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
            raise MisconfigurationException(f"`tol` must be a finite number >= 0, got {tol!r}.")
        if isinstance(weights, str) and weights not in ("uniform", "balanced"):
            raise MisconfigurationException(
                f"`weights` must be 'uniform', 'balanced' or a tensor of per-sample weights, got {weights!r}."
            )
        if any(not 0 < q < 1 for q in quantiles):
            raise MisconfigurationException(f"`quantiles` must lie in (0, 1), got {quantiles}.")
        theory.CertificateGrid(**(grid or {}))  # fail now, not after the first epoch, on a bad grid
        self.every_n_epochs = every_n_epochs
        self.check_at_start = check_at_start
        self.dataset = dataset
        self.dataloader = dataloader
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.forward_fn = forward_fn or default_forward
        self.weights = weights
        self.tol = float(tol)
        self.stop_on_instability = stop_on_instability
        self.patience = patience
        self.quantiles = tuple(quantiles)
        self.save_margins = save_margins
        self.log_histogram = log_histogram
        self.log_figure = log_figure
        self.grid = dict(grid or {})
        self.verbose = verbose
        if not isinstance(check_data, bool | dict):
            raise MisconfigurationException(f"`check_data` must be a bool or a dict of settings, got {check_data!r}.")
        self.check_data = check_data
        self.data_report: theory.DataClusterReport | None = None

        self.collector = MarginCollector()
        self.last_report: theory.StabilityReport | None = None
        self.last_pass: MarginPass | None = None
        self.last_metrics: dict[str, float] = {}
        # state saved in checkpoints
        self.checks_done = 0
        self.last_checked_epoch: int | None = None
        self.instability_count = 0
        self.consecutive_instabilities = 0
        self.previous: dict[str, Any] | None = None
        self.stop_reason: str | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_epochs=self.every_n_epochs, tol=self.tol, weights=self._weights_key)

    @property
    def _weights_key(self) -> str:
        return self.weights if isinstance(self.weights, str) else "tensor"

    # ------------------------------------------------------------------ hooks

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.check_data and self.data_report is None and trainer.current_epoch == 0:
            dataset, collate_fn, _ = self._training_data(trainer)
            settings = self.check_data if isinstance(self.check_data, dict) else {}
            output_dir = Path(trainer.log_dir or trainer.default_root_dir)
            self.data_report = run_data_check(trainer, pl_module, dataset, collate_fn, settings, output_dir)
        finished_epoch = trainer.current_epoch - 1
        if finished_epoch >= 0:
            # resumed from a checkpoint written before this monitor's check of that epoch (e.g. at validation
            # end): the weights are those the check saw in the uninterrupted run, so run it now.
            checked = -1 if self.last_checked_epoch is None else self.last_checked_epoch  # (0 is a checked epoch)
            if self._is_check_epoch(finished_epoch) and checked < finished_epoch:
                self._check(trainer, pl_module, epoch=finished_epoch, in_epoch_end=False)
        elif self.check_at_start and self.checks_done == 0:
            self._check(trainer, pl_module, epoch=-1, in_epoch_end=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if self._is_check_epoch(epoch) and (self.last_checked_epoch is None or self.last_checked_epoch < epoch):
            self._check(trainer, pl_module, epoch=epoch, in_epoch_end=True)

    def state_dict(self) -> dict[str, Any]:
        return {
            "checks_done": self.checks_done,
            "last_checked_epoch": self.last_checked_epoch,
            "instability_count": self.instability_count,
            "consecutive_instabilities": self.consecutive_instabilities,
            "previous": self.previous,
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.checks_done = state_dict["checks_done"]
        self.last_checked_epoch = state_dict["last_checked_epoch"]
        self.instability_count = state_dict["instability_count"]
        self.consecutive_instabilities = state_dict["consecutive_instabilities"]
        self.previous = state_dict["previous"]
        self.stop_reason = state_dict.get("stop_reason")

    def margins_dir(self, trainer: pl.Trainer) -> Path | None:
        """Where margin files go: ``save_margins``, or ``<trainer.log_dir>/margins`` for ``save_margins=True``."""
        if self.save_margins is None or self.save_margins is False:
            return None
        if self.save_margins is True:
            return Path(trainer.log_dir or trainer.default_root_dir) / "margins"
        return Path(self.save_margins)

    # ------------------------------------------------------------------ the check

    def _is_check_epoch(self, epoch: int) -> bool:
        return (epoch + 1) % self.every_n_epochs == 0

    def _check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, in_epoch_end: bool) -> None:
        margin_pass = self._margin_pass(trainer, pl_module)
        weights = self._sample_weights(margin_pass)
        mu = theory.validation.normalised_weights(weights, margin_pass.margins.shape[0], margin_pass.margins.device)
        loss = float((mu * margin_pass.losses).sum())
        report = theory.certify(margin_pass.margins, margin_pass.num_classes, weights=weights, loss=loss, **self.grid)
        metrics = self._metrics(report, margin_pass, weights, epoch)
        stop = self._update_events(trainer, metrics, report, margin_pass, weights)

        self.checks_done += 1
        self.last_checked_epoch = epoch
        self.last_report, self.last_pass, self.last_metrics = report, margin_pass, metrics
        step = _log_step(trainer, epoch)
        self._log(trainer, pl_module, metrics, in_epoch_end, step, epoch)
        if self.log_histogram:
            log_histogram(trainer, "stability/margins", margin_pass.margins, step)
        if self.log_figure:
            log_figure(trainer, "stability/envelopes", report, margin_pass.margins, mu, step)
        directory = self.margins_dir(trainer)
        if directory is not None and trainer.is_global_zero:
            save_margin_file(directory, epoch, trainer.global_step, margin_pass, report)
        if self.verbose:
            rank_zero_info(
                f"[StabilityMonitor] epoch {epoch}: accuracy {report.accuracy:.4f}, loss {loss:.4f}, "
                f"loss floor {report.loss_floor:.4f}, Theorem A floor {report.theorem_a.floor:.4f}, "
                f"Theorem B floor {report.theorem_b.floor:.4f}, instability events {self.instability_count}"
            )
        should_stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if should_stop and not trainer.should_stop:
            trainer.should_stop = True
            rank_zero_info(f"[StabilityMonitor] stopping training: {self.stop_reason}")

    def _margin_pass(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> MarginPass:
        loader = self._loader(trainer)
        self.collector = self.collector.to(pl_module.device)
        max_batches = None
        if trainer.fast_dev_run:
            max_batches = int(trainer.fast_dev_run)
        return run_margin_pass(
            pl_module,
            loader,
            self.forward_fn,
            self.collector,
            move_to_device=lambda batch: trainer.strategy.batch_to_device(batch, pl_module.device),
            forward_context=trainer.precision_plugin.forward_context,
            max_batches=max_batches,
        )

    def _loader(self, trainer: pl.Trainer) -> DataLoader:
        world_size, rank = trainer.world_size, trainer.global_rank
        if self.dataloader is not None:
            if world_size > 1:
                raise MisconfigurationException(
                    "StabilityMonitor(dataloader=...) cannot be sharded across processes; under DDP pass "
                    "`dataset=` instead and the monitor shards it with a DistributedSampler."
                )
            return positioned_loader(self.dataloader)
        dataset, collate_fn, train_batch_size = self._training_data(trainer)
        batch_size = self.batch_size or max(256, 4 * (train_batch_size or 64))
        return margin_dataloader(dataset, batch_size, collate_fn, self.num_workers, world_size, rank)

    def _training_data(self, trainer: pl.Trainer) -> tuple[Dataset, Any, int | None]:
        """``(dataset, collate_fn, training batch size)``: ``dataset=`` or the one behind the train dataloader."""
        dataset, collate_fn, train_batch_size = self.dataset, None, None
        train_loader = trainer.train_dataloader
        if isinstance(train_loader, DataLoader):
            collate_fn, train_batch_size = train_loader.collate_fn, train_loader.batch_size
            if dataset is None:
                dataset = train_loader.dataset
        if dataset is None:
            raise MisconfigurationException(
                "StabilityMonitor could not find the training dataset: `trainer.train_dataloader` is "
                f"{type(train_loader).__name__}, not a single DataLoader. Pass `dataset=` (a map-style dataset of "
                "the training samples) or `dataloader=` to the StabilityMonitor."
            )
        return dataset, collate_fn, train_batch_size

    def _sample_weights(self, margin_pass: MarginPass) -> Tensor | None:
        if isinstance(self.weights, Tensor):
            weights = self.weights.detach().to(torch.float64).reshape(-1)
            if int(margin_pass.indices.max()) >= weights.shape[0]:
                raise ValueError(
                    f"StabilityMonitor: `weights` has {weights.shape[0]} entries but the dataset has sample index "
                    f"{int(margin_pass.indices.max())}; pass one weight per training sample."
                )
            return weights[margin_pass.indices]
        if self.weights == "balanced":
            counts = torch.bincount(margin_pass.targets, minlength=margin_pass.num_classes).to(torch.float64)
            return 1.0 / counts[margin_pass.targets]
        return None

    def _metrics(
        self, report: theory.StabilityReport, margin_pass: MarginPass, weights: Tensor | None, epoch: int
    ) -> dict[str, float]:
        metrics = {f"stability/{key}": value for key, value in report.to_dict().items()}
        metrics["stability/num_classes"] = float(report.num_classes)
        distribution = SortedMargins(margin_pass.margins, weights)
        for level in self.quantiles:  # quantiles of the weighted F (§1): the smallest margin with F(δ) ≥ q
            metrics[f"stability/margin_quantile/q={level:g}"] = distribution.quantile_value(level)
        metrics["stability/check_epoch"] = float(epoch)
        return metrics

    def _update_events(
        self,
        trainer: pl.Trainer,
        metrics: dict[str, float],
        report: theory.StabilityReport,
        margin_pass: MarginPass,
        weights: Tensor | None,
    ) -> bool:
        loss, accuracy = metrics["stability/loss"], report.accuracy
        event = rose = False
        forgotten = learned = math.nan
        if self.previous is not None:
            event = theory.instability_event(self.previous["loss"], self.previous["accuracy"], loss, accuracy, self.tol)
            rose = theory.loss_rose(self.previous["loss"], loss)
            if torch.equal(self.previous["indices"], margin_pass.indices):
                forgotten, learned = theory.flip_masses(self.previous["margins"], margin_pass.margins, weights)
            else:
                rank_zero_warn(
                    "StabilityMonitor: the certified samples changed since the previous check; flip masses skipped."
                )
        if event:
            self.instability_count += 1
            self.consecutive_instabilities += 1
        else:
            self.consecutive_instabilities = 0
        metrics["stability/instability"] = float(event)
        metrics["stability/instability_count"] = float(self.instability_count)
        metrics["stability/loss_rose"] = float(rose)
        if not math.isnan(forgotten):
            metrics["stability/flip_forgotten"] = forgotten
            metrics["stability/flip_learned"] = learned
        stop = self.stop_on_instability and self.consecutive_instabilities >= self.patience
        if event:
            message = (
                f"instability at epoch {int(metrics['stability/check_epoch'])}: the training loss fell "
                f"({self.previous['loss']:.6g} -> {loss:.6g}) while the training accuracy fell "  # type: ignore[index]
                f"({self.previous['accuracy']:.6g} -> {accuracy:.6g}, tol {self.tol:g}); "  # type: ignore[index]
                f"{self.consecutive_instabilities} consecutive event(s), patience {self.patience}"
            )
            if stop:
                self.stop_reason = message
            rank_zero_warn(f"StabilityMonitor: {message}")
        self.previous = {
            "indices": margin_pass.indices.clone(),
            "margins": margin_pass.margins.clone(),
            "loss": loss,
            "accuracy": accuracy,
        }
        return stop

    def _log(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        metrics: dict[str, float],
        in_epoch_end: bool,
        step: int,
        epoch: int,
    ) -> None:
        if in_epoch_end:
            # `self.log` turns a Python float into a float32 tensor: log float64 tensors so that
            # `trainer.callback_metrics` and the loggers keep the certificate's full precision (MPS has no float64)
            dtype = torch.float32 if pl_module.device.type == "mps" else torch.float64
            has_logger = bool(trainer.loggers)  # no "you called self.log(logger=True) but have no logger" warnings
            # the values are identical on every rank; under DDP `sync_dist` averages identical values (exact) and
            # keeps Lightning from warning, for each of them, that epoch-level values are not synchronised
            distributed = trainer.world_size > 1
            for name, value in metrics.items():
                pl_module.log(
                    name,
                    torch.tensor(value, dtype=dtype, device=pl_module.device),
                    on_step=False,
                    on_epoch=True,
                    sync_dist=distributed,
                    logger=has_logger,
                    batch_size=1,
                )
        else:
            log_out_of_epoch(trainer, metrics, step=step, epoch=max(epoch, 0))


def _log_step(trainer: pl.Trainer, epoch: int) -> int:
    """The logger step of a check: where Lightning logs the epoch-end metrics of ``epoch`` (its last training step).

    Lightning logs ``self.log(on_epoch=True)`` values of a training epoch at ``_batches_that_stepped - 1``; a
    catch-up check of a finished epoch after resuming and the histogram / figure use the same step, so one check's
    scalars, histogram and figure line up, and a resumed run logs at the steps of an uninterrupted one.
    """
    stepped = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step)
    return max(stepped - 1, 0) if epoch >= 0 else stepped
