r"""SharpnessMonitor: is the learning rate small enough for gradient descent's equilibria to be stable? (docs/dynamics.md D1)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.utils.data import Dataset

from ..assess import Patience
from ..distributions import MisconfigurationError
from ..dynamics import EigenEstimate, HessianVectorProduct, top_hessian_eigenvalue
from ..lightning_internals import autograd_function_class
from .base import EpochMonitor, check_positive_int
from .sharpness_loss import BINARY_LOSS_EXAMPLE, MULTICLASS_LOSS_EXAMPLE, cross_entropy_loss
from .training_data import TrainingData, fixed_subset, load_batches, untouched_training

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["SharpnessMonitor"]

_ONCE_DIFFERENTIABLE_CODE = once_differentiable(lambda ctx: None).__code__
"""The code of the wrapper `torch.autograd.function.once_differentiable` puts around a backward."""


def _graph_nodes(root: Any) -> Iterator[Any]:
    """Every node of the autograd graph that ends in ``root`` (a ``grad_fn``), each once."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(child for child, _ in node.next_functions)


LossFn = Callable[[nn.Module, Any], Tensor]
"""``loss_fn(pl_module, batch) -> the mean loss of the batch`` (a scalar that autograd can differentiate twice)."""


class SharpnessMonitor(EpochMonitor):
    r"""Track the sharpness ``λ_max(∇²L)`` of the training loss against the step size ``2 / η``.

    Gradient descent ``θ ← θ − η ∇L(θ)`` near a minimiser behaves like ``δ ← (I − η H) δ``; its equilibrium is
    Lyapunov-stable only while ``η λ_max(H) ≤ 2``. Every ``every_n_epochs`` training epochs the monitor estimates
    ``λ_max`` — the largest *algebraic* eigenvalue of the Hessian of the mean loss
    ``L(θ) = (1/n) Σ_{i ∈ S} ℓ_i(θ)`` over a fixed subset ``S`` of ``n`` training samples (seeded choice of
    indices) — from Hessian-vector products (`lightning_stability.dynamics.top_hessian_eigenvalue`) and logs

    * ``stability/sharpness/lambda_max`` — ``λ_max``;
    * ``stability/sharpness/lr`` — the optimizer's learning rate ``η`` (the largest over all param groups) when
      the check runs, i.e. the one the next steps use (Lightning has already stepped epoch-interval schedulers);
    * ``stability/sharpness/lr_lambda_over_2`` — ``η λ_max / 2``; ``> 1``: at this step size gradient descent's
      equilibrium is unstable (with per-group learning rates the true ratio ``λ_max(P^{1/2} H P^{1/2}) / 2`` is
      at most this one; for heavy-ball momentum ``μ`` the threshold is ``1 + μ`` instead of 1, and for adaptive
      optimizers such as Adam the ratio is only indicative);
    * ``stability/sharpness/unstable`` (1 when the ratio is ``> 1``), ``stability/sharpness/consecutive_unstable``,
      ``stability/sharpness/hvp_count`` (Hessian-vector products used) and ``stability/sharpness/converged``.

    The estimate runs in eval mode (dropout off, so the operator is deterministic) with gradients computed by
    `torch.autograd.grad` only, inside `torch.random.fork_rng`: training's RNG, every parameter's
    ``.grad`` and every submodule's train/eval mode are unchanged afterwards. Under DDP every rank evaluates the
    same subset and rank zero's values are broadcast, so all ranks log and decide alike. Weight decay applied by
    the optimizer is not part of ``L`` (it would add its coefficient to every eigenvalue).

    Args:
        every_n_epochs: estimate after every n-th training epoch.
        num_samples: size ``n`` of the fixed evaluation subset (all samples if the dataset is smaller).
        seed: seed of the subset's indices, of the start vector and of random dataset transforms.
        dataset: the samples to draw from; default: the dataset behind ``trainer.train_dataloader``.
        batch_size: chunk size of the loss; default ``num_samples`` (one chunk whose gradient graph is kept across
            products). Smaller chunks bound memory but recompute each chunk's gradient per product.
        loss_fn: ``loss_fn(pl_module, batch) -> mean loss`` of a batch; default `cross_entropy_loss` (cross
            entropy of ``(x, y)`` batches; binary cross entropy with labels 0/1 for a model of one logit).
        method: ``"power"`` (power iteration with a shift when the dominant eigenvalue is negative) or
            ``"lanczos"`` (fewer products, keeps up to ``max_iter`` parameter-sized vectors).
        tol: relative convergence tolerance of the eigenvalue.
        max_iter: cap on Hessian-vector products per iteration run.
        stop_on_unstable: stop training after ``patience`` consecutive checks with ``η λ_max / 2 > 1``.
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
        method: Literal["power", "lanczos"] = "power",
        tol: float = 1e-3,
        max_iter: int = 100,
        stop_on_unstable: bool = False,
        patience: int = 1,
        verbose: bool = False,
    ) -> None:
        super().__init__(every_n_epochs=every_n_epochs, verbose=verbose)
        owner = self.name
        check_positive_int(owner, "num_samples", num_samples)
        check_positive_int(owner, "patience", patience)
        if batch_size is not None:
            check_positive_int(owner, "batch_size", batch_size)
        if not isinstance(seed, int):
            raise self.error(f"`seed` must be an integer, got {seed!r}.")
        if method not in ("power", "lanczos"):
            raise self.error(f"`method` must be 'power' or 'lanczos', got {method!r}.")
        if not (isinstance(tol, int | float) and math.isfinite(tol) and 0 < tol < 1):
            raise self.error(f"`tol` must be a relative tolerance in (0, 1), got {tol!r}.")
        if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 2:
            raise self.error(f"`max_iter` must be an integer >= 2, got {max_iter!r}.")
        if loss_fn is not None and not callable(loss_fn):
            raise self.error(f"`loss_fn` must be callable as loss_fn(pl_module, batch) -> mean loss, got {loss_fn!r}.")
        self.num_samples = num_samples
        self.seed = seed
        self.dataset = dataset
        self.batch_size = batch_size
        self.loss_fn = loss_fn or cross_entropy_loss
        self.method = method
        self.tol = float(tol)
        self.max_iter = max_iter
        self.stop_on_unstable = stop_on_unstable
        self.patience = patience
        self.last_estimate: EigenEstimate | None = None
        # state saved in checkpoints (besides the base's counters)
        self.unstable_count = 0
        self.stop_rule = Patience(patience, stop_on_unstable)
        self.indices: Tensor | None = None

    checkpoint_state = (*EpochMonitor.checkpoint_state, "unstable_count", "consecutive_unstable", "indices")

    def reset_for_new_fit(self, same_model: bool) -> None:
        """A later ``fit`` starts its counts afresh; the evaluation subset is drawn again (the data may differ)."""
        super().reset_for_new_fit(same_model)
        self.last_estimate = None
        self.unstable_count = 0
        self.stop_rule = Patience(self.patience, self.stop_on_unstable)
        self.indices = None

    @property
    def consecutive_unstable(self) -> int:
        """Consecutive checks with ``η λ_max / 2 > 1`` up to the last one (the stop rule's count)."""
        return self.stop_rule.consecutive

    @consecutive_unstable.setter
    def consecutive_unstable(self, value: int) -> None:
        self.stop_rule.consecutive = value

    metric_prefixes = ("stability/sharpness/",)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_epochs=self.every_n_epochs, num_samples=self.num_samples)

    # ------------------------------------------------------------------ the check

    def estimate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> EigenEstimate:
        """``λ_max`` of the loss on the fixed subset at the current weights (no logging; draws the subset once)."""
        data = self.training_data(trainer, self.dataset)
        indices = self._subset(data)
        params = self._parameters(pl_module)
        total = indices.numel()
        with untouched_training(pl_module), torch.inference_mode(False), torch.enable_grad():
            batches = load_batches(trainer, pl_module, data, indices, self.batch_size or total, self.seed)
            closures = [self._closure(pl_module, batch) for _, batch in batches]
            operator = HessianVectorProduct(params, closures, [size / total for size, _ in batches])
            try:
                return top_hessian_eigenvalue(
                    operator,
                    operator.dim,
                    method=self.method,
                    tol=self.tol,
                    max_iter=self.max_iter,
                    seed=self.seed,
                    device=params[0].device,
                )
            except ValueError as error:
                raise ValueError(f"SharpnessMonitor at epoch {trainer.current_epoch}: {error}") from error

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
        with an example, `_default_loss`), and one Hessian-vector product (a double backward through the model)
        must run — raises with the fix otherwise, so a model that cannot be differentiated twice fails before any
        epoch rather than at the first check. Eval mode, RNG and ``.grad`` are left as they were (`untouched_training`,
        a seeded generator for the vector, `torch.autograd.grad` only)."""
        data = self.training_data(trainer, self.dataset)
        indices = self._subset(data)[:1]
        params = self._parameters(pl_module)
        with untouched_training(pl_module), torch.inference_mode(False), torch.enable_grad():
            ((_, batch),) = load_batches(trainer, pl_module, data, indices, 1, self.seed)
            if self.loss_fn is cross_entropy_loss:
                loss = self._default_loss(pl_module, batch)
            else:
                loss = self.loss_fn(pl_module, batch)
            self._check_loss(loss)
            self._refuse_once_differentiable(loss)
            if torch.isfinite(loss.detach()).item():  # a non-finite loss is reported by the check, with its epoch
                self._probe_double_backward(pl_module, params, batch)

    def _default_loss(self, pl_module: pl.LightningModule, batch: Any) -> Tensor:
        """`cross_entropy_loss` on ``batch``, its errors turned into a `MisconfigurationError` that says what the
        default loss computes and names ``loss_fn=`` with an example (its own such errors pass unchanged)."""
        try:
            return cross_entropy_loss(pl_module, batch)
        except (MisconfigurationError, torch.cuda.OutOfMemoryError):
            raise
        except Exception as error:
            failure = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise self.error(
                "the default loss (cross entropy of the model's class scores against `(x, y)` batches' labels; "
                "binary cross entropy with labels 0 or 1 for a model of one logit) fails on one training sample: "
                f"{type(error).__name__}: {failure}. Pass the loss you train with as `loss_fn=`, e.g. "
                f"`{MULTICLASS_LOSS_EXAMPLE}` or, for one logit, `{BINARY_LOSS_EXAMPLE}`."
            ) from error

    def _check_loss(self, loss: Any) -> None:
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else type(loss).__name__
            raise self.error(
                f"`loss_fn` must return the mean loss of a batch as a scalar tensor, got {got}. Pass "
                "`loss_fn=lambda module, batch: <mean training loss of the batch>`."
            )
        if not loss.requires_grad:
            raise self.error(
                "`loss_fn`'s loss does not depend on the trainable parameters (no gradient); it must run the model "
                "on the batch with gradients enabled."
            )

    def _refuse_once_differentiable(self, loss: Tensor) -> None:
        """Refuse a custom ``autograd.Function`` whose backward is marked ``@once_differentiable`` in the loss's graph.

        Its double backward does not fail under `torch.autograd.grad`: the error node it leaves hangs off detached
        inputs, so the engine prunes it, and when the incoming gradient needs no grad nothing is recorded at all —
        the Hessian-vector product then silently misses every term through that function. Only the forward graph
        shows it, so it is searched here."""
        classes = (autograd_function_class(node) for node in _graph_nodes(loss.grad_fn))
        functions = sorted(
            {
                cls.__name__
                for cls in classes
                if getattr(getattr(cls, "backward", None), "__code__", None) is _ONCE_DIFFERENTIABLE_CODE
            }
        )
        if functions:
            raise self.error(
                f"the loss goes through the custom autograd.Function {', '.join(functions)} whose backward is marked "
                "@once_differentiable: torch treats its backward as a constant when differentiating a second time "
                "(no error), so every Hessian-vector product — and λ_max — would be wrong. Make its backward "
                "differentiable (remove @once_differentiable and write the backward with differentiable torch "
                "operations), freeze the parameters that feed into it (requires_grad=False), or remove the "
                "SharpnessMonitor."
            )

    def _probe_double_backward(self, pl_module: pl.LightningModule, params: list[Tensor], batch: Any) -> None:
        """One Hessian-vector product on ``batch``; an operation without a double backward is a MisconfigurationError."""
        operator = HessianVectorProduct(params, [self._closure(pl_module, batch)])
        generator = torch.Generator().manual_seed(self.seed)
        vector = torch.randn(operator.dim, generator=generator, dtype=torch.float64)
        try:
            operator(vector)
        except torch.cuda.OutOfMemoryError:  # not about differentiability
            raise
        except RuntimeError as error:
            failure = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise self.error(
                "cannot compute a Hessian-vector product (a double backward through the model) on one training "
                f"sample: {failure}. Every operation between the trainable parameters and the loss must be "
                "differentiable twice: replace the failing one (e.g. a custom autograd.Function marked "
                "@once_differentiable, or a fused kernel without double backward) by a differentiable form, freeze "
                "the parameters that feed into it (requires_grad=False), or remove the SharpnessMonitor. (Attention "
                "is already computed with its math backend, which is differentiable twice.)"
            ) from error

    def _closure(self, pl_module: pl.LightningModule, batch: Any) -> Callable[[], Tensor]:
        return lambda: self.loss_fn(pl_module, batch)

    def run_check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, in_epoch_end: bool) -> None:
        estimate = self.estimate(trainer, pl_module)
        lrs = [group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups]
        lr = float(max(lrs)) if lrs else math.nan
        metrics = {
            "stability/sharpness/lambda_max": estimate.value,
            "stability/sharpness/lr": lr,
            "stability/sharpness/lr_lambda_over_2": lr * estimate.value / 2,
            "stability/sharpness/hvp_count": float(estimate.products),
            "stability/sharpness/converged": float(estimate.converged),
        }
        metrics = self.same_on_every_rank(trainer, metrics)
        unstable = metrics["stability/sharpness/lr_lambda_over_2"] > 1
        self.unstable_count += int(unstable)
        stop = self.stop_rule.update(unstable)
        metrics["stability/sharpness/unstable"] = float(unstable)
        metrics["stability/sharpness/consecutive_unstable"] = float(self.consecutive_unstable)
        self.finish_check(metrics, epoch)
        self.last_estimate = estimate
        self.log_metrics(
            trainer, pl_module, metrics, in_epoch_end=in_epoch_end, epoch=epoch, step=self.log_step(trainer)
        )
        value, ratio = metrics["stability/sharpness/lambda_max"], metrics["stability/sharpness/lr_lambda_over_2"]
        if not estimate.converged:
            self.warn(
                trainer,
                f"λ_max did not converge to tol={self.tol:g} in {self.max_iter} products per run "
                f"at epoch {epoch} (estimate {value:.6g}); raise `max_iter` or try method='lanczos'.",
            )
        self.info(
            trainer,
            f"epoch {epoch}: λ_max {value:.6g}, lr {lr:.3g}, lr·λ_max/2 {ratio:.4g} "
            f"({estimate.products} Hessian-vector products)",
        )
        reason = None
        if stop:
            reason = (
                f"lr·λ_max/2 = {ratio:.4g} > 1 (λ_max {value:.6g}, lr {lr:.3g}) at {self.consecutive_unstable} "
                f"consecutive check(s) up to epoch {epoch}, patience {self.patience}: at this step size gradient "
                f"descent's equilibria are unstable (λ_max > 2 / lr = {2 / lr:.6g})"
            )
        self.decide_stop(trainer, stop, reason)
