"""GradientFlowMonitor: per-layer gradient norms and the first/last layer ratio (vanishing/exploding, docs/dynamics.md D3)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from torch.optim import Optimizer

from ..distributions import grad_norm
from ..dynamics import depth_layers, first_last_ratio, layer_norms
from .base import Monitor, check_positive_int

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["GradientFlowMonitor"]


class GradientFlowMonitor(Monitor):
    r"""Log every ``every_n_steps`` optimizer steps how large the gradient is at each depth.

    In ``on_before_optimizer_step`` — after accumulation, gradient unscaling and the DDP all-reduce, before
    clipping — Lightning's `pytorch_lightning.utilities.grad_norm` gives every parameter's gradient
    p-norm ``‖g_q‖_p``, and `lightning_stability.dynamics.layer_norms` combines those of each layer into
    ``‖g_ℓ‖_p = (Σ_{q ∈ ℓ} ‖g_q‖_p^p)^{1/p}``. Logged straight to the loggers at the optimizer step (whatever
    ``log_every_n_steps`` is):

    * ``stability/gradient_flow/norm/{layer}`` — ``‖g_ℓ‖_p`` for every layer (module name);
    * ``stability/gradient_flow/total_norm`` — the p-norm of all gradients as one vector;
    * ``stability/gradient_flow/first_last_ratio`` — ``‖g_first‖ / ‖g_last‖``, the layer nearest the input over
      the one nearest the output: ``≪ 1`` vanishing, ``≫ 1`` exploding gradients across depth.

    Layers default to the modules owning a weight matrix or kernel (``weight`` with ≥ 2 dimensions: Linear, Conv,
    Embedding, …) in registration order; normalisation layers are left out. Under DDP the gradients are already
    averaged across ranks and rank zero's values are broadcast, so every rank holds the same numbers.

    Args:
        every_n_steps: log at optimizer steps ``0, n, 2n, …`` (``trainer.global_step`` before the step).
        norm_type: ``p`` of the norms (``2.0``, ``1.0``, ``"inf"``, …).
        layers: module names in depth order (input side first) instead of the default.
        verbose: print the layers at fit start and a one-line summary of every logged step (rank zero).

    Raises:
        MisconfigurationError: on invalid options (here), and at setup if fewer than two layers with a weight
            matrix are found or ``layers`` names modules that are missing or own no parameters.

    Example:

        >>> from pytorch_lightning import Trainer
        >>> from lightning_stability import GradientFlowMonitor
        >>> monitor = GradientFlowMonitor(every_n_steps=50)
        >>> trainer = Trainer(callbacks=[monitor], max_epochs=5)  # doctest: +SKIP
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        norm_type: float | int | str = 2.0,
        layers: Sequence[str] | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(verbose=verbose)
        check_positive_int(self.name, "every_n_steps", every_n_steps)
        try:
            p = float(norm_type)
        except (TypeError, ValueError):
            p = math.nan
        if not p > 0:
            raise self.error(f"`norm_type` must be a positive number or 'inf', got {norm_type!r}.")
        if layers is not None and (isinstance(layers, str) or not all(isinstance(n, str) for n in layers)):
            raise self.error(f"`layers` must be a list of module names (input side first), got {layers!r}.")
        if layers is not None and len(layers) < 2:
            raise self.error(f"`layers` needs at least two modules to compare first and last, got {layers!r}.")
        self.every_n_steps = every_n_steps
        self.norm_type = p
        self.layers = list(layers) if layers is not None else None
        self.resolved_layers: list[str] = []
        # state saved in checkpoints (besides the base's counters)
        self.last_logged_step: int | None = None

    checkpoint_state = (*Monitor.checkpoint_state, "last_logged_step")
    # the names it logs (straight to the loggers, never to `trainer.callback_metrics`), see `metric_readers`
    metric_prefixes: ClassVar[tuple[str, ...]] = ("stability/gradient_flow/",)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_steps=self.every_n_steps, norm_type=self.norm_type)

    def reset_for_new_fit(self, same_model: bool) -> None:
        super().reset_for_new_fit(same_model)
        self.last_logged_step = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":  # the monitor acts during training only
            return
        modules = dict(pl_module.named_modules())
        if self.layers is None:
            self.resolved_layers = depth_layers(pl_module)
            if len(self.resolved_layers) < 2:
                raise self.error(
                    f"found {len(self.resolved_layers)} layer(s) with a weight matrix "
                    f"({self.resolved_layers}); the first/last ratio needs two. Pass `layers=[module names]`."
                )
        else:
            missing = [name for name in self.layers if name not in modules]
            if missing:
                raise self.error(
                    f"no module named {missing} in the model; `layers` takes names from `model.named_modules()`."
                )
            childless = [name for name in self.layers if not any(True for _ in modules[name].parameters(False))]
            if childless:
                raise self.error(
                    f"modules {childless} own no parameters; name the modules that hold the "
                    "weights (e.g. the Linear layers)."
                )
            self.resolved_layers = list(self.layers)
        self.info(trainer, f"layers, input side first: {self.resolved_layers}")

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        step = trainer.global_step
        if step % self.every_n_steps != 0 or step == self.last_logged_step:
            return
        norms = grad_norm(pl_module, self.norm_type, group_separator="/")
        prefix = f"grad_{self.norm_type}_norm/"
        per_parameter = {name[len(prefix) :]: float(value) for name, value in norms.items() if name.startswith(prefix)}
        per_layer = layer_norms(per_parameter, self.resolved_layers, self.norm_type)
        metrics = {f"stability/gradient_flow/norm/{layer}": value for layer, value in per_layer.items()}
        total = norms.get(f"grad_{self.norm_type}_norm_total")
        metrics["stability/gradient_flow/total_norm"] = float(total) if total is not None else math.nan
        ordered = [per_layer[layer] for layer in self.resolved_layers if layer in per_layer]
        metrics["stability/gradient_flow/first_last_ratio"] = (
            first_last_ratio(ordered) if len(ordered) >= 2 else math.nan
        )
        metrics = self.same_on_every_rank(trainer, metrics)
        self.finish_check(metrics)
        self.last_logged_step = step
        self.log_metrics(trainer, pl_module, metrics, in_epoch_end=False, step=step)
        self.info(
            trainer,
            f"step {step}: total norm {metrics['stability/gradient_flow/total_norm']:.4g}, "
            f"first/last ratio {metrics['stability/gradient_flow/first_last_ratio']:.4g}",
        )
