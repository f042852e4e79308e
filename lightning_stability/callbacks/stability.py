"""StabilityMonitor: certify the training accuracy's stability at epoch end (docs/theory.md §1–§8)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .. import theory
from ..data_check import run_data_check
from ..distributions import MisconfigurationError
from ..dynamics.samples import SampleDynamics
from ..figures.envelope import envelope_figure
from ..files import save_margin_file
from ..loggers import (
    declare_final,
    log_constants,
    log_figure,
    log_final,
    log_histogram,
    log_layout,
    log_text,
)
from ..summaries import check_summary
from .base import EpochMonitor, check_positive_int
from .check_cost import CheckCost
from .data_probe import PROBE_SIZE, reads_differ, stochastic_data_message
from .instability import compare_with_previous
from .margin_pass import (
    ForwardFn,
    MarginCollector,
    MarginPass,
    default_forward,
    margin_dataloader,
    positioned_loader,
    run_margin_pass,
)
from .run_outputs import check_output_directories, choose_run_directory
from .sample_tracking import SampleTracker
from .stability_names import DASHBOARD, FINAL, logged_name
from .subset_check import SubsetCheck, check_subset_options
from .training_data import TrainingData

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["StabilityMonitor"]

Weights = Literal["uniform", "balanced"] | Tensor

DYNAMICS_PREFIXES = ("stability/sharpness/", "stability/parametrization/", "stability/gradient_flow/")
"""The dynamics monitors' names, which share the ``stability/`` prefix."""


class StabilityMonitor(EpochMonitor):
    r"""Certify, at the end of training epochs, whether the training accuracy reached is stable.

    Every ``every_n_epochs`` training epochs (and once when training starts) the monitor runs an exact margin
    pass over the **whole training set** (model in eval mode, ``torch.inference_mode()``, the trainer's precision
    context, a fixed sequential order; under DDP every rank evaluates a shard and the results are gathered),
    calls `lightning_stability.theory.certify` and logs, under ``stability/``, the accuracy, the loss and
    its margin sandwich, the Theorem 0/A/B accuracy floors with their parameters, the good/bad masses, margin
    quantiles, flip masses and the instability flags of docs/theory.md §8. An *instability event* is a check whose
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
        grid: overrides of `lightning_stability.theory.CertificateGrid` passed to ``certify``.
        verbose: print a one-line summary of every check (rank zero).
        check_data: once at fit start, look for small isolated clusters in the training inputs (docs/theory.md §9,
            `lightning_stability.theory.data_clusters`) with the rows of the model's first ``nn.Linear`` as
            extra directions; logs ``stability/data/*`` and writes ``data_clusters.pt``/``.txt`` (witness
            indices) to the log directory. ``True`` uses the defaults; a dict passes keyword arguments.
        stochastic_data: what to do when the certified samples are random (two reads of the same indices give
            different outputs, e.g. augmentation in the training Dataset): ``"error"`` stops before training and
            says how to pass a deterministic view (``dataset=`` with evaluation transforms); ``"approximate"``
            certifies one random draw per check and labels every summary as approximate.
        blame_size: how many worst-margin samples each check blames (and the cells per row of a blame grid); at an
            instability event the monitor logs ``stability/blame``, a grid of the blamed samples with their labels
            and predictions (docs/samples.md).
        to_image: ``to_image(dataset[i]) -> tensor``, the picture of a sample in the blame grids; default the input
            of an ``(x, y)`` item (an image ``[C, H, W]``/``[H, W]``, a flattened square, or a short vector).
        save_samples: write ``samples.csv`` (per-sample dynamics, docs/samples.md) at fit end, into the
            ``save_margins`` directory if one is given, else the run directory; ``None`` follows ``save_margins``.
        sample_history: keep every check's per-sample margins in memory (``O(N × checks)``; default ``O(N)``).
        subset_size: statistical mode for data too large to pass at every check (docs/cost.md): draw this many
            training indices once (with replacement, from ``μ``) and evaluate only them at the checks that are not
            full ones, logging estimates with confidence bounds under ``stability_estimate/`` (docs/theory.md §11).
            ``None`` (default): every check is the exact full one.
        confidence: ``1 − α`` of the statistical mode's bounds (Clopper–Pearson accuracy bound, DKW quantile band).
        full_every_n_epochs: in statistical mode, run the exact full check (the proven floors under
            ``stability/``) after every m-th epoch instead of the subset check; ``None``: never.
        subset_seed: seed of the statistical mode's draw.
        log_cost: log what each check costs under ``stability_cost/`` (seconds of the margin pass and of the theory
            step, and their sum over the training time of the epoch).

    Raises:
        MisconfigurationError: on invalid options (here), and when training starts if the training data cannot
            be found or is not map-style, or ``forward_fn`` does not return ``(logits [B, K], targets [B])`` on the
            first batch — before the first epoch.
        ValueError: at a check, if the model's outputs are not finite or the labels are out of range, naming the
            samples; if ``weights`` has fewer entries than the dataset.

    Example:

        >>> from pytorch_lightning import Trainer
        >>> from lightning_stability import StabilityMonitor
        >>> monitor = StabilityMonitor(every_n_epochs=1, stop_on_instability=True, patience=2)
        >>> trainer = Trainer(callbacks=[monitor], max_epochs=3)  # doctest: +SKIP
    """

    checkpoint_state = (
        *EpochMonitor.checkpoint_state,
        "instability_count",
        "consecutive_instabilities",
        "instability_epochs",
        "previous",
        "sample_state",
        "subset_state",
    )
    metric_prefixes = ("stability/", "stability_diagnostics/", "stability_estimate/", "stability_cost/")
    logger_only_prefixes = ("stability_diagnostics/", "stability_cost/")

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
        stochastic_data: Literal["error", "approximate"] = "error",
        blame_size: int = 16,
        to_image: Callable[[Any], Any] | None = None,
        save_samples: bool | None = None,
        sample_history: bool = False,
        subset_size: int | None = None,
        confidence: float = 0.95,
        full_every_n_epochs: int | None = None,
        subset_seed: int = 0,
        log_cost: bool = True,
    ) -> None:
        super().__init__(every_n_epochs=every_n_epochs, check_at_start=check_at_start, verbose=verbose)
        if dataset is not None and dataloader is not None:
            raise self.error("pass either `dataset=` or `dataloader=`, not both.")
        if batch_size is not None:
            check_positive_int(self.name, "batch_size", batch_size)
        if not isinstance(num_workers, int) or num_workers < 0:
            raise self.error(f"`num_workers` must be a non-negative integer, got {num_workers!r}.")
        check_positive_int(self.name, "patience", patience)
        if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
            raise self.error(f"`tol` must be a finite number >= 0, got {tol!r}.")
        if isinstance(weights, str) and weights not in ("uniform", "balanced"):
            raise self.error(
                f"`weights` must be 'uniform', 'balanced' or a tensor of per-sample weights, got {weights!r}."
            )
        if any(not 0 < q < 1 for q in quantiles):
            raise self.error(f"`quantiles` must lie in (0, 1), got {quantiles}.")
        theory.CertificateGrid(**(grid or {}))  # fail now, not after the first epoch, on a bad grid
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
        if stochastic_data not in ("error", "approximate"):
            raise self.error(f"`stochastic_data` must be 'error' or 'approximate', got {stochastic_data!r}.")
        self.stochastic_data = stochastic_data
        self.approximate = False
        check_subset_options(subset_size, confidence, full_every_n_epochs, weights)
        if subset_size is not None and dataloader is not None:
            raise self.error("`subset_size=` needs `dataset=` (or the training data), not `dataloader=`.")
        self.subset_size, self.confidence, self.full_every_n_epochs = subset_size, confidence, full_every_n_epochs
        self.subset = (
            SubsetCheck(subset_size, confidence, full_every_n_epochs, subset_seed) if subset_size is not None else None
        )
        self.last_estimate: theory.SubsetEstimate | None = None
        self.subset_state: dict[str, Any] | None = None
        """The statistical mode's drawn subset and its previous check (`SubsetCheck.state_dict`), in checkpoints."""
        self.cost = CheckCost(log_cost)
        self.last_cost: dict[str, float] = {}
        if not isinstance(check_data, bool | dict):
            raise self.error(f"`check_data` must be a bool or a dict of settings, got {check_data!r}.")
        self.check_data = check_data
        self.data_report: theory.DataClusterReport | None = None

        self.collector = MarginCollector()
        self.last_report: theory.StabilityReport | None = None
        self.last_pass: MarginPass | None = None
        # state saved in checkpoints (besides the base's counters)
        self.instability_count = 0
        self.consecutive_instabilities = 0
        self.instability_epochs: list[int] = []
        self.previous: dict[str, Any] | None = None
        self._constants_logged = False
        self.run_dir: Path | None = None
        check_positive_int(self.name, "blame_size", blame_size)
        if to_image is not None and not callable(to_image):
            raise self.error(f"`to_image` must be a function of a dataset item, got {to_image!r}.")
        if save_samples not in (None, True, False):
            raise self.error(f"`save_samples` must be True, False or None (follow save_margins), got {save_samples!r}.")
        self.blame_size, self.to_image, self.sample_history = blame_size, to_image, bool(sample_history)
        self.save_samples = save_samples
        self.samples = SampleTracker(blame_size, to_image, sample_history)

    def owns_metric(self, name: str) -> bool:
        """``stability/…`` and ``stability_diagnostics/…``, except the dynamics monitors' ``stability/<kind>/…``."""
        return super().owns_metric(name) and not name.startswith(DYNAMICS_PREFIXES)

    def metric_period(self, name: str) -> int | None:
        """In the statistical mode the exact values (``stability/…``) are logged after every
        ``lcm(every_n_epochs, full_every_n_epochs)``-th epoch only (never without ``full_every_n_epochs``), the
        estimates (``stability_estimate/…``) after the other checked epochs (a fixed period only without full
        checks); the cost after every check."""
        if self.subset is None or name.startswith("stability_cost/"):
            return self.every_n_epochs
        full = self.full_every_n_epochs
        if name.startswith("stability_estimate/"):
            return self.every_n_epochs if full is None else None
        return None if full is None else math.lcm(self.every_n_epochs, full)

    def metric_schedule(self, name: str) -> str:
        if self.subset is None:
            return super().metric_schedule(name)
        return (
            f"subset_size={self.subset_size}, every_n_epochs={self.every_n_epochs}, "
            f"full_every_n_epochs={self.full_every_n_epochs}: exact values after the full checks only, estimates "
            "after the other checks"
        )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_epochs=self.every_n_epochs, tol=self.tol, weights=self._weights_key)

    @property
    def sample_state(self) -> dict[str, Any]:
        """The per-sample statistics, saved in checkpoints."""
        return self.samples.statistics.state_dict()

    @sample_state.setter
    def sample_state(self, state: dict[str, Any]) -> None:
        self.samples.statistics.load_state_dict(state)

    def samples_dir(self, trainer: pl.Trainer) -> Path | None:
        """Where ``samples.csv`` goes: the ``save_margins`` directory if one is given, else the run directory (see
        `margins_dir`); ``None`` if it is not written."""
        if not (bool(self.save_margins) if self.save_samples is None else self.save_samples):
            return None
        if self.save_margins and self.save_margins is not True:
            return Path(self.save_margins)
        return self.run_dir or Path(trainer.default_root_dir)

    def sample_dynamics(self) -> SampleDynamics:
        """Per-sample statistics over the checks so far (docs/samples.md): last margin, ``aum``, forgetting events,
        first learned check, cartography confidence/variability, correctness, predicted class; ``.to_pandas()``."""
        return self.samples.result()

    @property
    def _weights_key(self) -> str:
        return self.weights if isinstance(self.weights, str) else "tensor"

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Choose this run's output directory (files of one run never mix with another's) and check that every
        directory the monitor will write to is writable — before training."""
        if stage != "fit":
            return
        needs_run_dir = (
            self.save_margins is True or bool(self.check_data) or bool(self.save_samples and not self.save_margins)
        )
        self.run_dir = choose_run_directory(trainer) if needs_run_dir else None
        check_output_directories(
            trainer,
            {
                "save_margins": self.margins_dir(trainer),
                "check_data": self.run_dir if self.check_data else None,
                "save_samples": self.samples_dir(trainer),
            },
        )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # before Lightning logs the model's hyperparameters: TensorBoard's HParams keeps a run's first summary
        params: dict[str, Any] = {}
        for name, value in dict(getattr(pl_module, "hparams_initial", {}) or {}).items():
            params[name] = value
        params.update(
            {
                "stability/every_n_epochs": self.every_n_epochs,
                "stability/tol": self.tol,
                "stability/weights": self._weights_key,
            }
        )
        declare_final(trainer, params, list(FINAL))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log_layout(trainer, DASHBOARD)
        self._constants_logged = False
        if self.check_data and self.data_report is None and trainer.current_epoch == 0:
            data = self._training_data(trainer)
            settings = self.check_data if isinstance(self.check_data, dict) else {}
            output_dir = self.run_dir or Path(trainer.default_root_dir)
            self.data_report = run_data_check(trainer, pl_module, data.dataset, data.collate_fn, settings, output_dir)
        super().on_train_start(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        directory = self.samples_dir(trainer)
        if directory is not None and trainer.is_global_zero and self.checks_done:
            self.info(trainer, f"per-sample dynamics: {self.samples.save(directory)}")
        report = self.last_report
        if report is not None:
            values = (
                report.accuracy,
                report.loss_floor,
                report.theorem_a.floor,
                report.theorem_b.floor,
                float(self.instability_count),
            )
            final = dict(zip(FINAL, values, strict=True))
            log_final(trainer, self._constants(report), final)

    def _constants(self, report: theory.StabilityReport) -> dict[str, Any]:
        """What does not change during a run: logged once (text, hyperparameters), never as a chart."""
        return {
            "stability/num_samples": report.num_samples,
            "stability/num_classes": report.num_classes,
            "stability/every_n_epochs": self.every_n_epochs,
            "stability/weights": self._weights_key,
            "stability/tol": self.tol,
            "stability/theorem_b/dilation": report.theorem_b.dilation,
            "stability/approximate": self.approximate,
        }

    def validate_setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Check ``weights`` against the dataset's length, and run ``forward_fn`` on one batch of the margin loader
        and check its output (the forward is skipped when the check before training runs: it checks every batch).
        """
        if isinstance(self.weights, Tensor) and self.dataloader is None:
            length = len(self._training_data(trainer))
            if self.weights.numel() != length:
                raise self.error(
                    f"`weights` has {self.weights.numel()} entries but the training dataset has {length} samples; "
                    "pass one weight per training sample, in dataset order."
                )
        self._check_deterministic(trainer, pl_module)

    def _check_deterministic(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Stop before training if the training data is random (see `lightning_stability.callbacks.data_probe`),
        unless ``stochastic_data="approximate"`` accepts it (then every summary says so)."""
        loader = self._loader(trainer, batch_size=PROBE_SIZE)
        stochastic, probed = reads_differ(trainer, pl_module, loader, self.forward_fn)
        self.approximate = stochastic
        if not stochastic:
            return
        if self.stochastic_data == "approximate":
            self.warn(
                trainer,
                "the training samples differ between two passes (random augmentation?): every check certifies one "
                "random draw of the data, so its numbers are APPROXIMATE and an instability event may be noise.",
            )
            return
        raise self.error(stochastic_data_message(probed, self.dataloader is not None))

    def margins_dir(self, trainer: pl.Trainer) -> Path | None:
        """Where margin files go: ``save_margins``, or ``<run directory>/margins`` for ``save_margins=True`` — the
        TensorBoard/CSV logger's ``version_N`` directory, else a fresh ``<default_root_dir>/stability_runs/version_N``.
        """
        if self.save_margins is None or self.save_margins is False:
            return None
        if self.save_margins is True:
            return (self.run_dir or Path(trainer.default_root_dir)) / "margins"
        return Path(self.save_margins)

    # ------------------------------------------------------------------ the check

    def run_check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, in_epoch_end: bool) -> None:
        if self.subset is not None and not self.subset.is_full(epoch):
            self.subset.run(self, trainer, pl_module, epoch, in_epoch_end)
            return
        started = self.cost.clock()
        margin_pass = self._margin_pass(trainer, pl_module)
        passed = self.cost.clock()
        weights = self._sample_weights(margin_pass)
        mu = theory.validation.normalised_weights(weights, margin_pass.margins.shape[0], margin_pass.margins.device)
        loss = float((mu * margin_pass.losses).sum())
        distribution = theory.SortedMargins(margin_pass.margins, weights)  # one sort for certify and the quantiles
        report = theory.certify(
            margin_pass.margins,
            margin_pass.num_classes,
            weights=weights,
            loss=loss,
            sorted_margins=distribution,
            **self.grid,
        )
        metrics = self._metrics(report, distribution, epoch)
        cost = self.cost.metrics(passed - started, self.cost.clock() - passed)
        stop, reason = compare_with_previous(self, trainer, metrics, margin_pass, weights)
        event = bool(metrics["stability/instability"])
        directory = self.margins_dir(trainer)
        forgotten, blame = self.samples.check(
            margin_pass, report, weights, self.grid, self.data_report, blame=event or directory is not None
        )

        loss_rose = bool(metrics["stability/loss_rose"])
        metrics = {logged: value for name, value in metrics.items() if (logged := logged_name(name)) is not None}
        self.finish_check(metrics, epoch)
        self.last_report, self.last_pass = report, margin_pass
        step = self.log_step(trainer, epoch)
        self.log_check_metrics(trainer, pl_module, metrics, cost, in_epoch_end=in_epoch_end, epoch=epoch, step=step)
        if not self._constants_logged:
            log_constants(trainer, self._constants(report))
            self._constants_logged = True
        summary = check_summary(report, epoch, self.instability_epochs, loss_rose)
        flips = " " + self.samples.flip_sentence(forgotten, margin_pass) if event else ""
        summary += flips
        if self.approximate:
            summary = "**Approximate** (random training data: this check certifies one random draw). " + summary
        log_text(trainer, "stability/summary", summary, step)
        if self.log_histogram:
            log_histogram(trainer, "stability/margins", margin_pass.margins, step)
        if self.log_figure:
            margins = margin_pass.margins
            log_figure(
                trainer, "stability/envelopes", lambda: envelope_figure(report, margins.cpu(), mu.cpu(), epoch), step
            )
        dataset = None if self.dataloader is not None else self._training_data(trainer).dataset
        rows = self.samples.log_grid(trainer, dataset, blame, margin_pass, epoch, step) if event and blame else None
        if directory is not None and blame is not None and trainer.is_global_zero:
            blamed = self.samples.file_entries(trainer, dataset, blame, margin_pass, rows)
            save_margin_file(directory, epoch, trainer.global_step, margin_pass, report, extra=blamed)
        self.info(
            trainer,
            f"{'[approximate: random training data] ' if self.approximate else ''}"
            f"epoch {epoch}: accuracy {report.accuracy:.4f}, loss {loss:.4f}, "
            f"loss floor {report.loss_floor:.4f}, Theorem A floor {report.theorem_a.floor:.4f}, "
            f"Theorem B floor {report.theorem_b.floor:.4f}, instability events {self.instability_count}{';' if flips else ''}{flips}",
        )
        self.decide_stop(trainer, stop, reason)

    # ------------------------------------------------------------------ cost and the statistical mode's hooks

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.cost.start_epoch()

    def log_check_metrics(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        metrics: dict[str, float],
        cost: dict[str, float],
        *,
        in_epoch_end: bool,
        epoch: int,
        step: int,
    ) -> None:
        """Log a check's metrics and its cost (rank zero's timings on every rank) in one call per logger; the cost
        is kept apart from ``last_metrics``, which hold what the check computed, so that they compare equal
        across runs."""
        if cost:
            self.last_cost = self.same_on_every_rank(trainer, cost)
        both = {**metrics, **(self.last_cost if cost else {})}
        self.log_metrics(trainer, pl_module, both, in_epoch_end=in_epoch_end, epoch=epoch, step=step)

    def training_dataset_size(self, trainer: pl.Trainer) -> int:
        """``N``, the number of training samples the checks cover."""
        return len(cast(Sized, self._training_data(trainer).dataset))

    def full_weights(self) -> Tensor | None:
        """The user's per-sample weights as float64 (``None`` for uniform)."""
        if isinstance(self.weights, Tensor):
            return self.weights.detach().to(torch.float64).reshape(-1).cpu()
        return None

    def margin_pass_over(self, trainer: pl.Trainer, pl_module: pl.LightningModule, indices: Tensor) -> MarginPass:
        """The margin pass over the training samples ``indices`` only (the statistical mode)."""
        return self._margin_pass(trainer, pl_module, indices)

    def _margin_pass(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, indices: Tensor | None = None
    ) -> MarginPass:
        loader = self._loader(trainer, indices=indices)
        self.collector = self.collector.to(pl_module.device)
        fast_dev_run = getattr(trainer, "fast_dev_run", 0)  # set by the Trainer's debugging connector
        max_batches = int(fast_dev_run) if fast_dev_run else None
        return run_margin_pass(
            pl_module,
            loader,
            self.forward_fn,
            self.collector,
            move_to_device=lambda batch: trainer.precision_plugin.convert_input(
                trainer.strategy.batch_to_device(batch, pl_module.device)
            ),
            forward_context=trainer.precision_plugin.forward_context,
            max_batches=max_batches,
        )

    def _loader(self, trainer: pl.Trainer, batch_size: int | None = None, indices: Tensor | None = None) -> DataLoader:
        world_size, rank = trainer.world_size, trainer.global_rank
        if self.dataloader is not None:
            if world_size > 1:
                raise MisconfigurationError(
                    "StabilityMonitor(dataloader=...) cannot be sharded across processes; under DDP pass "
                    "`dataset=` instead and the monitor shards it with a DistributedSampler."
                )
            return positioned_loader(self.dataloader)
        data = self._training_data(trainer)
        batch_size = batch_size or self.batch_size or max(256, 4 * (data.batch_size or 64))
        return margin_dataloader(
            data.dataset,
            batch_size,
            collate_fn=data.collate_fn,
            num_workers=self.num_workers,
            world_size=world_size,
            rank=rank,
            indices=indices,
            pin_memory=trainer.strategy.root_device.type == "cuda",
        )

    def _training_data(self, trainer: pl.Trainer) -> TrainingData:
        """``dataset=`` or the dataset behind the train dataloader, with its ``collate_fn`` and batch size."""
        return self.training_data(trainer, self.dataset, "`dataset=` (a map-style dataset) or `dataloader=`")

    def _sample_weights(self, margin_pass: MarginPass) -> Tensor | None:
        if isinstance(self.weights, Tensor):
            weights = self.weights.detach().to(torch.float64).reshape(-1)
            if int(margin_pass.indices.max()) >= weights.shape[0] or (
                self.dataloader is not None and weights.shape[0] != margin_pass.indices.numel()
            ):
                raise ValueError(
                    f"StabilityMonitor: `weights` has {weights.shape[0]} entries but {margin_pass.indices.numel()} "
                    "samples were certified; pass one weight per training sample."
                )
            return weights[margin_pass.indices]
        if self.weights == "balanced":
            counts = torch.bincount(margin_pass.targets, minlength=margin_pass.num_classes).to(torch.float64)
            return 1.0 / counts[margin_pass.targets]
        return None

    def _metrics(
        self, report: theory.StabilityReport, distribution: theory.SortedMargins, epoch: int
    ) -> dict[str, float]:
        metrics = {f"stability/{key}": value for key, value in report.to_dict().items()}
        for level in self.quantiles:  # quantiles of the weighted F (§1): the smallest margin with F(δ) ≥ q
            metrics[f"stability/margin_quantile/q_{level:g}"] = distribution.quantile_value(level)
        metrics["stability/check_epoch"] = float(epoch)
        return metrics
