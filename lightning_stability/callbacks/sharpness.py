r"""SharpnessMonitor: is the training at, below or beyond the edge of stability of its optimizer? (docs/dynamics.md D1)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..assess import Patience
from ..dynamics import HessianVectorProduct
from ..dynamics.optimizer_preconditioner import OptimizerPreconditioner, UnreadableOptimizer, read_preconditioner
from ..dynamics.results import EigenEstimate
from ..dynamics.sharpness_check import SharpnessEstimates, estimate_sharpness
from ..dynamics.sharpness_edge import edge_verdict
from ..dynamics.sharpness_groups import group_positions
from .base import EpochMonitor, check_positive_int
from .sharpness_loss import cross_entropy_loss
from .sharpness_metrics import PREFIX, check_extra_options, check_metrics
from .sharpness_mode import batch_statistics
from .sharpness_probe import check_loss, default_loss, probe_double_backward, refuse_once_differentiable
from .training_data import TrainingData, fixed_subset, load_batches, untouched_training

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["SharpnessMonitor"]

LossFn = Callable[[nn.Module, Any], Tensor]
"""``loss_fn(pl_module, batch) -> the mean loss of the batch`` (a scalar that autograd can differentiate twice)."""


class SharpnessMonitor(EpochMonitor):
    r"""Track the sharpness of the training loss against the edge of stability of the optimizer that trains it.

    Every ``every_n_epochs`` training epochs the monitor estimates the top eigenvalues of the Hessian ``H`` of the
    mean loss ``L(θ) = (1/n) Σ_{i ∈ S} ℓ_i(θ)`` over a fixed subset ``S`` of ``n`` training samples (seeded
    choice, collated once and kept on the model's device) from Hessian-vector products, reads the optimizer's
    preconditioner ``P⁻¹`` and threshold ``T`` from its ``param_groups`` and ``state``
    (`lightning_stability.dynamics.optimizer_preconditioner`) and logs

    * ``stability/sharpness/edge_ratio`` — ``r = λ_max(P^{-1/2}(H + W)P^{-1/2}) / T`` (``W``: coupled weight
      decay): 1 is the edge of stability of SGD, heavy-ball and Nesterov momentum, Adam, AdamW and RMSprop alike;
    * ``stability/sharpness/lambda_max`` — ``λ_max(H)``; ``stability/sharpness/gap`` — ``λ_2 / λ_1`` (Lanczos);
      ``stability/sharpness/lambda_<i>`` for ``i = 2 … k``;
    * ``stability/sharpness/loss`` — ``L(θ)`` on the subset, whose trend the verdict reads;
    * ``stability/sharpness/lr`` (the largest learning rate of all groups) and ``stability/sharpness/lr_lambda_over_2``
      (``η λ_max / 2``, the ratio of plain gradient descent, kept for comparison);
    * ``stability/sharpness/trace`` and ``stability/sharpness/trace_stderr`` — ``tr(H)`` by Hutchinson or Hutch++
      with its standard error (``trace_samples > 0``);
    * ``stability/sharpness/group<g>/lambda_max`` — ``λ_max`` of the Hessian block of parameter group ``g``
      (``groups=True``; the optimizers' groups numbered in order);
    * ``stability/sharpness/unstable`` (1 when ``r > unstable_ratio`` and the loss did not fall since the previous
      check), ``stability/sharpness/consecutive_unstable``, ``stability/sharpness/hvp_count`` (products of the
      check) and ``stability/sharpness/converged``.

    ``r ≈ 1`` while the loss falls is the edge of stability — normal full-batch training (Cohen et al. 2021, 2022)
    — and never stops a run. An optimizer of another class: one warning naming it; ``lambda_max`` is logged, no
    ``edge_ratio`` and no verdict.

    The estimate runs in eval mode (dropout off; batch norm uses its running statistics; ``mode="train"``: batch
    norm uses the statistics of each batch, its buffers restored) with gradients computed by `torch.autograd.grad`
    only, inside `torch.random.fork_rng`: training's RNG, every parameter's ``.grad``
    and every submodule's train/eval mode are unchanged afterwards. Under DDP every rank evaluates the same subset
    and rank zero's values are broadcast, so all ranks log and decide alike.

    Args:
        every_n_epochs: estimate after every n-th training epoch.
        num_samples: size ``n`` of the fixed evaluation subset (all samples if the dataset is smaller).
        seed: seed of the subset's indices, of the start vector and of random dataset transforms.
        dataset: the samples to draw from; default: the dataset behind ``trainer.train_dataloader``.
        batch_size: chunk size of the loss; default ``num_samples`` (one chunk whose gradient graph is kept across
            products; with ``mode="train"`` the training loader's batch size). Smaller chunks bound memory but
            recompute each chunk's gradient per product.
        loss_fn: ``loss_fn(pl_module, batch) -> mean loss`` of a batch; default `cross_entropy_loss` (cross
            entropy of ``(x, y)`` batches; binary cross entropy with labels 0/1 for a model of one logit).
        method: ``"lanczos"`` (default: residual stopping rule ``‖Hv − θv‖ ≤ tol·|θ|``, warm-started from the
            previous check's vector) or ``"power"`` (power iteration; no ``gap``, ``k = 1`` only).
        k: how many top eigenvalues of ``H`` to estimate and log (Lanczos; at least 2 are computed for ``gap``).
        tol: relative tolerance of the eigenvalues.
        max_iter: cap on Hessian-vector products per iteration run.
        trace_samples: Hessian-vector products spent on ``tr(H)`` per check (0: no trace; else at least 2,
            Hutch++ at least 4).
        trace_method: ``"hutchinson"`` (Rademacher probes, ``tr(H) ≈ mean zᵀHz``) or ``"hutch++"`` (exact on a
            sketched top subspace, Hutchinson on the rest).
        groups: also estimate ``λ_max`` of each optimizer parameter group's diagonal Hessian block (Lanczos).
        mode: ``"eval"`` (default; batch norm with running statistics) or ``"train"`` (batch-norm layers use the
            statistics of each chunk of the subset, the loss the optimizer sees; every buffer is restored after the
            check; other layers stay in eval mode).
        unstable_ratio: the edge ratio above which a check whose loss did not fall is unstable (default 1.2).
        stop_on_unstable: stop training after ``patience`` consecutive unstable checks.
        patience: consecutive unstable checks that stop training.
        verbose: print a one-line summary of every check (rank zero).

    Raises:
        MisconfigurationError: on invalid options (here), and when training starts if the training data cannot
            be found or is not map-style, the model has no trainable parameters, the default loss fails on one
            sample (the message names ``loss_fn=`` with an example), ``loss_fn`` does not give a differentiable
            scalar on one sample, or one Hessian-vector product on that sample fails (an operation
            without double backward, e.g. ``torch.cdist``) or would be wrong (a custom ``autograd.Function``
            marked ``@once_differentiable``) — before the first epoch. Attention
            (``scaled_dot_product_attention``, ``nn.TransformerEncoder``) works: products run with its math
            backend.
        ValueError: at a check, if the loss or a Hessian-vector product is not finite.

    Example:

        >>> from pytorch_lightning import Trainer
        >>> from lightning_stability import SharpnessMonitor
        >>> monitor = SharpnessMonitor(every_n_epochs=2, num_samples=256, stop_on_unstable=True, patience=3)
        >>> trainer = Trainer(callbacks=[monitor], max_epochs=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_samples: int = 512,
        seed: int = 0,
        dataset: Dataset | None = None,
        batch_size: int | None = None,
        loss_fn: LossFn | None = None,
        method: Literal["power", "lanczos"] = "lanczos",
        k: int = 1,
        tol: float = 1e-3,
        max_iter: int = 100,
        trace_samples: int = 0,
        trace_method: Literal["hutchinson", "hutch++"] = "hutchinson",
        groups: bool = False,
        mode: Literal["eval", "train"] = "eval",
        unstable_ratio: float = 1.2,
        stop_on_unstable: bool = False,
        patience: int = 1,
        verbose: bool = False,
    ) -> None:
        super().__init__(every_n_epochs=every_n_epochs, verbose=verbose)
        owner = self.name
        check_positive_int(owner, "num_samples", num_samples)
        check_positive_int(owner, "patience", patience)
        check_positive_int(owner, "k", k)
        if batch_size is not None:
            check_positive_int(owner, "batch_size", batch_size)
        if not isinstance(seed, int):
            raise self.error(f"`seed` must be an integer, got {seed!r}.")
        if method not in ("power", "lanczos"):
            raise self.error(f"`method` must be 'power' or 'lanczos', got {method!r}.")
        if method == "power" and k > 1:
            raise self.error(f"`k={k}` needs method='lanczos' (power iteration estimates λ_max only).")
        if not (isinstance(tol, int | float) and math.isfinite(tol) and 0 < tol < 1):
            raise self.error(f"`tol` must be a relative tolerance in (0, 1), got {tol!r}.")
        if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 2:
            raise self.error(f"`max_iter` must be an integer >= 2, got {max_iter!r}.")
        check_extra_options(self.error, trace_samples, trace_method, groups, mode)
        if not (isinstance(unstable_ratio, int | float) and math.isfinite(unstable_ratio) and unstable_ratio >= 1):
            raise self.error(f"`unstable_ratio` must be a number >= 1 (the edge is 1), got {unstable_ratio!r}.")
        if loss_fn is not None and not callable(loss_fn):
            raise self.error(f"`loss_fn` must be callable as loss_fn(pl_module, batch) -> mean loss, got {loss_fn!r}.")
        self.num_samples = num_samples
        self.seed = seed
        self.dataset = dataset
        self.batch_size = batch_size
        self.loss_fn = loss_fn or cross_entropy_loss
        self.method = method
        self.k = k
        self.tol = float(tol)
        self.max_iter = max_iter
        self.trace_samples, self.trace_method, self.groups, self.mode = trace_samples, trace_method, groups, mode
        self.unstable_ratio = float(unstable_ratio)
        self.stop_on_unstable = stop_on_unstable
        self.patience = patience
        self.last_estimate: EigenEstimate | None = None
        self.last_estimates: SharpnessEstimates | None = None
        self._batches: list[tuple[int, Any]] | None = None  # the subset, collated once and on the device
        self._unreadable_warned = False
        # state saved in checkpoints (besides the base's counters)
        self.unstable_count = 0
        self.stop_rule = Patience(patience, stop_on_unstable)
        self.indices: Tensor | None = None
        self.previous_loss: float | None = None
        self.warm_start: Tensor | None = None
        self.edge_warm_start: Tensor | None = None

    checkpoint_state = (
        *EpochMonitor.checkpoint_state,
        "unstable_count",
        "consecutive_unstable",
        "indices",
        "previous_loss",
        "warm_start",
        "edge_warm_start",
    )

    def reset_for_new_fit(self, same_model: bool) -> None:
        """A later ``fit`` starts its counts afresh; the evaluation subset is drawn again (the data may differ)."""
        super().reset_for_new_fit(same_model)
        self.last_estimate = None
        self.last_estimates = None
        self._batches = None
        self.unstable_count = 0
        self.stop_rule = Patience(self.patience, self.stop_on_unstable)
        self.indices = None
        self.previous_loss = None
        self.warm_start = None
        self.edge_warm_start = None

    @property
    def consecutive_unstable(self) -> int:
        """Consecutive unstable checks up to the last one (the stop rule's count)."""
        return self.stop_rule.consecutive

    @consecutive_unstable.setter
    def consecutive_unstable(self, value: int) -> None:
        self.stop_rule.consecutive = value

    metric_prefixes = (PREFIX,)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_epochs=self.every_n_epochs, num_samples=self.num_samples)

    # ------------------------------------------------------------------ the check

    def estimate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> EigenEstimate:
        """``λ_max`` of the loss on the fixed subset at the current weights (no logging, no warm start)."""
        with self._differentiable(pl_module):
            operator = self._operator(trainer, pl_module)
            estimates = self._solve(trainer, operator, None, None, None)
        return estimates.top[0]

    @contextlib.contextmanager
    def _differentiable(self, pl_module: pl.LightningModule) -> Iterator[None]:
        """Where the check's products run: training left untouched, batch norm per ``mode`` (`batch_statistics`
        with ``mode="train"``), gradients on even inside Lightning's inference mode."""
        statistics = batch_statistics(pl_module) if self.mode == "train" else contextlib.nullcontext()
        with untouched_training(pl_module), statistics, torch.inference_mode(False), torch.enable_grad():
            yield

    def _operator(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> HessianVectorProduct:
        batches = self._subset_batches(trainer, pl_module)
        total = sum(size for size, _ in batches)
        closures = [self._closure(pl_module, batch) for _, batch in batches]
        return HessianVectorProduct(self._parameters(pl_module), closures, [size / total for size, _ in batches])

    def _solve(
        self,
        trainer: pl.Trainer,
        operator: HessianVectorProduct,
        preconditioner: OptimizerPreconditioner | None,
        previous: Tensor | None,
        previous_edge: Tensor | None,
    ) -> SharpnessEstimates:
        try:
            return estimate_sharpness(
                operator,
                operator.dim,
                method=self.method,
                k=max(self.k, 2) if self.method == "lanczos" else 1,
                tol=self.tol,
                max_iter=self.max_iter,
                seed=self.seed,
                device=operator.device,
                preconditioner=preconditioner,
                previous=previous,
                previous_edge=previous_edge,
                trace_products=self.trace_samples,
                trace_method=self.trace_method,
                groups=group_positions(trainer.optimizers, operator.params) if self.groups else (),
            )
        except ValueError as error:
            raise ValueError(f"SharpnessMonitor at epoch {trainer.current_epoch}: {error}") from error

    def _subset_batches(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[tuple[int, Any]]:
        """The subset's chunks, collated and moved to the device at the first check of a fit, then kept."""
        if self._batches is None:
            data = self.training_data(trainer, self.dataset)
            indices = self._subset(data)
            size = self.batch_size or (self.mode == "train" and data.batch_size) or indices.numel()
            self._batches = load_batches(trainer, pl_module, data, indices, size, self.seed)
        return self._batches

    def _subset(self, data: TrainingData) -> Tensor:
        """The fixed evaluation subset: drawn once, then kept (and saved in checkpoints)."""
        if self.indices is None:
            self.indices = fixed_subset(len(data), self.num_samples, self.seed)
        elif int(self.indices.max()) >= len(data):
            raise self.error(
                f"the saved evaluation subset has index {int(self.indices.max())} but the dataset has {len(data)} "
                "samples; resume with the same training data."
            )
        return self.indices

    def _parameters(self, pl_module: pl.LightningModule) -> list[Tensor]:
        params: list[Tensor] = [p for p in pl_module.parameters() if p.requires_grad]
        if not params:
            raise self.error("the model has no trainable parameters.")
        return params

    def validate_setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Before training, on one sample of the subset: ``loss_fn`` must give a scalar that depends on the
        trainable parameters (any error of the default loss becomes a `MisconfigurationError` naming ``loss_fn=``
        with an example), and one Hessian-vector product (a double backward through the model) must run — raises
        with the fix otherwise, so a model that cannot be differentiated twice fails before any epoch rather than
        at the first check (`sharpness_probe`). Eval mode, RNG and ``.grad`` are left as they were."""
        data = self.training_data(trainer, self.dataset)
        indices = self._subset(data)[:1]
        params = self._parameters(pl_module)
        with untouched_training(pl_module), torch.inference_mode(False), torch.enable_grad():
            ((_, batch),) = load_batches(trainer, pl_module, data, indices, 1, self.seed)
            if self.loss_fn is cross_entropy_loss:
                loss = default_loss(self.error, pl_module, batch)
            else:
                loss = self.loss_fn(pl_module, batch)
            check_loss(self.error, loss)
            refuse_once_differentiable(self.error, loss)
            if torch.isfinite(loss.detach()).item():  # a non-finite loss is reported by the check, with its epoch
                probe_double_backward(self.error, params, self._closure(pl_module, batch), self.seed)

    def _closure(self, pl_module: pl.LightningModule, batch: Any) -> Callable[[], Tensor]:
        return lambda: self.loss_fn(pl_module, batch)

    def _preconditioner(self, trainer: pl.Trainer, params: list[Tensor]) -> OptimizerPreconditioner | None:
        """The optimizers' ``P⁻¹`` and ``T``, or ``None`` with one warning when they cannot be read."""
        try:
            return read_preconditioner(trainer.optimizers, params)
        except UnreadableOptimizer as error:
            if not self._unreadable_warned:
                self._unreadable_warned = True
                self.warn(
                    trainer,
                    f"{error}: `stability/sharpness/edge_ratio` and the `unstable` verdict are not computed for "
                    "this fit; `lambda_max` (of the loss Hessian) is still logged.",
                )
            return None

    def run_check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, in_epoch_end: bool) -> None:
        with self._differentiable(pl_module):
            operator = self._operator(trainer, pl_module)
            preconditioner = self._preconditioner(trainer, operator.params)
            estimates = self._solve(trainer, operator, preconditioner, self.warm_start, self.edge_warm_start)
            loss = operator.loss  # evaluated by the products themselves: no extra forward
        top = estimates.top[0]
        lrs = [group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups]
        lr = float(max(lrs)) if lrs else math.nan
        metrics = self.same_on_every_rank(trainer, check_metrics(estimates, loss, lr, self.k))
        self.warm_start = top.vector.detach().cpu()
        self.edge_warm_start = None if estimates.edge is None else estimates.edge.vector.detach().cpu()
        self.last_estimate, self.last_estimates = top, estimates
        ratio = metrics.get(PREFIX + "edge_ratio")
        stop, unstable = False, False
        if ratio is not None:
            unstable = edge_verdict(ratio, metrics[PREFIX + "loss"], self.previous_loss, self.unstable_ratio)
            self.unstable_count += int(unstable)
            stop = self.stop_rule.update(unstable)
            metrics[PREFIX + "unstable"] = float(unstable)
            metrics[PREFIX + "consecutive_unstable"] = float(self.consecutive_unstable)
        previous_loss, self.previous_loss = self.previous_loss, metrics[PREFIX + "loss"]
        self.finish_check(metrics, epoch)
        self.log_metrics(
            trainer, pl_module, metrics, in_epoch_end=in_epoch_end, epoch=epoch, step=self.log_step(trainer)
        )
        value = metrics[PREFIX + "lambda_max"]
        if not estimates.converged:
            self.warn(
                trainer,
                f"the eigenvalues did not converge to tol={self.tol:g} in {self.max_iter} products per run "
                f"at epoch {epoch} (λ_max estimate {value:.6g}); raise `max_iter`.",
            )
        shown = "not read" if ratio is None else f"{ratio:.4g}"
        self.info(
            trainer,
            f"epoch {epoch}: λ_max {value:.6g}, edge ratio {shown}, loss {self.previous_loss:.6g} "
            f"({estimates.products} Hessian-vector products)",
        )
        reason = None
        if stop and ratio is not None:
            before = "none (first check)" if previous_loss is None else f"{previous_loss:.6g}"
            reason = (
                f"edge ratio λ_max(P^-1/2 H P^-1/2)/T = {ratio:.4g} > {self.unstable_ratio:g} while the loss did not "
                f"fall ({self.previous_loss:.6g}, previous check {before}) at {self.consecutive_unstable} "
                f"consecutive check(s) up to epoch {epoch}, patience {self.patience}: the optimizer is beyond its edge "
                f"of stability (λ_max {value:.6g}, lr {lr:.3g}, lr·λ_max/2 = {lr * value / 2:.4g})"
            )
        self.decide_stop(trainer, stop, reason)
