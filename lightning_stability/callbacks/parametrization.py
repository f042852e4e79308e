"""ParametrizationMonitor: dead, unbalanced, redundant and disconnected hidden units (docs/dynamics.md D2)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..data_check import describe_batch, input_fn_example
from ..distributions import MisconfigurationError
from ..dynamics import (
    HiddenLayer,
    ParametrizationStats,
    activation_kind,
    find_hidden_layers,
    parametrization_statistics,
)
from ..loggers import log_histogram
from .base import EpochMonitor, check_positive_int
from .training_data import fixed_subset, load_batches, untouched_training

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["ParametrizationMonitor", "run_inputs"]


def run_inputs(pl_module: nn.Module, batch: Any) -> Any:
    """The default probe forward: ``pl_module(x)`` for an ``(x, y, …)`` batch, ``pl_module(batch)`` otherwise."""
    if isinstance(batch, list | tuple):
        return pl_module(batch[0])
    return pl_module(batch)


class ParametrizationMonitor(EpochMonitor):
    r"""Find degenerate parametrizations of ``Linear → activation → Linear`` hidden layers.

    Hidden layers are found among the model's leaf modules in registration order (a Linear, a ReLU, LeakyReLU,
    PReLU, ReLU6 or `lightning_stability.AbsoluteValue`, optional Dropout/Identity, the next Linear
    taking the first one's outputs), or named explicitly with ``layers``. Every ``every_n_epochs`` training epochs
    the model runs in eval mode on a fixed probe batch (seeded choice of training samples), forward hooks record
    every hidden layer's pre-activations ``Z = X Wᵀ + b``, and
    `lightning_stability.dynamics.parametrization_statistics` gives, for layer ``i`` (0-based, in order),
    the scalars logged under ``stability/parametrization/layer{i}/``:

    * ``dead_units``, ``dead_fraction``: units with ``z ≤ 0`` on every probe sample (ReLU family; ReLU6 also
      ``z ≥ 6``), or ``z = 0`` identically (``|x|``); ``live_units`` (not dead, no zero norm); ``units``;
    * ``balance_min``, ``balance_max``, ``balance_spread``: of ``β_j = ‖(w_j, b_j)‖ / ‖v_j‖`` (incoming row with
      bias over outgoing column) over live units, spread ``= max β / min β``;
    * ``max_cosine``, ``min_cosine``, ``parallel_pairs``, ``opposite_pairs``: cosines of incoming weight vectors
      ``w_j`` over unit pairs, and the pairs with ``cos > threshold`` / ``cos < −threshold``;
    * ``zero_units``, ``zero_incoming``, ``zero_outgoing``: units with a zero incoming or outgoing norm;

    and a TensorBoard histogram ``stability/parametrization/layer{i}/balance`` of the live units' ``β_j``.
    Training is untouched (eval mode and RNG restored, no gradients). Under DDP every rank probes the same
    samples with the same weights and rank zero's values are broadcast.

    Args:
        every_n_epochs: check after every n-th training epoch.
        num_samples: probe batch size (all samples if the dataset is smaller).
        seed: seed of the probe indices and of random dataset transforms.
        dataset: the samples to draw from; default: the dataset behind ``trainer.train_dataloader``.
        layers: ``[(incoming Linear, activation, outgoing Linear), …]`` module names (``model.named_modules()``)
            instead of the automatic search.
        forward_fn: ``forward_fn(pl_module, batch)`` runs the model on a probe batch; default `run_inputs`.
        input_fn: ``input_fn(batch) -> tensor [B, ...]``, what the model takes for a probe batch (the input its
            first layer receives), e.g. ``lambda batch: batch["features"]`` for dict batches; the probe then runs
            ``pl_module(input_fn(batch))``. Default ``None``: `run_inputs`. Not together with ``forward_fn``.
        threshold: cosine threshold of parallel / opposite pairs.
        zero_tol: norms ``≤ zero_tol`` count as zero.
        log_histogram: log the balance histograms (TensorBoard).
        verbose: print the layers found and a one-line summary per layer and check (rank zero).

    Raises:
        MisconfigurationError: on invalid options (here), at setup if no hidden layer is found or ``layers``
            names missing or unsuitable modules, and when training starts if the probe forward fails on a probe
            batch (e.g. a dict batch without ``input_fn``) or does not call every hidden layer — before the first
            epoch.
        FloatingPointError: at a check, if a hidden layer's weights or pre-activations are NaN or infinite
            (training diverged), naming the layer, instead of logging meaningless statistics.

    Example:

        >>> from pytorch_lightning import Trainer
        >>> from lightning_stability import ParametrizationMonitor
        >>> monitor = ParametrizationMonitor(every_n_epochs=1, num_samples=256, threshold=0.99)
        >>> trainer = Trainer(callbacks=[monitor], max_epochs=5)  # doctest: +SKIP
    """

    metric_prefixes = ("stability/parametrization/",)

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_samples: int = 256,
        seed: int = 0,
        dataset: Dataset | None = None,
        layers: Sequence[tuple[str, str, str]] | None = None,
        forward_fn: Callable[[nn.Module, Any], Any] | None = None,
        threshold: float = 0.99,
        zero_tol: float = 0.0,
        log_histogram: bool = True,
        verbose: bool = False,
        input_fn: Callable[[Any], Tensor] | None = None,
    ) -> None:
        super().__init__(every_n_epochs=every_n_epochs, verbose=verbose)
        owner = self.name
        check_positive_int(owner, "num_samples", num_samples)
        if not isinstance(seed, int):
            raise self.error(f"`seed` must be an integer, got {seed!r}.")
        if not (isinstance(threshold, int | float) and 0 < threshold < 1):
            raise self.error(f"`threshold` must be a cosine in (0, 1), got {threshold!r}.")
        if not (isinstance(zero_tol, int | float) and math.isfinite(zero_tol) and zero_tol >= 0):
            raise self.error(f"`zero_tol` must be a finite number >= 0, got {zero_tol!r}.")
        if layers is not None and (
            isinstance(layers, str)
            or not all(
                isinstance(t, list | tuple) and len(t) == 3 and all(isinstance(n, str) for n in t) for t in layers
            )
        ):
            raise self.error(
                "`layers` must be a list of (incoming Linear, activation, outgoing Linear) module-name "
                f"triples, e.g. [('net.0', 'net.1', 'net.2')], got {layers!r}."
            )
        if forward_fn is not None and not callable(forward_fn):
            raise self.error(
                f"`forward_fn` must be a function `forward_fn(pl_module, batch)` or None, got {forward_fn!r}."
            )
        if input_fn is not None and not callable(input_fn):
            raise self.error(
                "`input_fn` must be a function of a training batch that returns what the model takes (a tensor "
                f"[B, ...]), e.g. `input_fn={input_fn_example()}`, or None for the default; got {input_fn!r}."
            )
        if input_fn is not None and forward_fn is not None:
            raise self.error(
                "pass either `input_fn=` (the probe runs `pl_module(input_fn(batch))`) or `forward_fn=` (it runs "
                "`forward_fn(pl_module, batch)`), not both."
            )
        self.num_samples = num_samples
        self.seed = seed
        self.dataset = dataset
        self.layers = [tuple(t) for t in layers] if layers is not None else None
        self.forward_fn = forward_fn or run_inputs
        self.input_fn = input_fn
        self.threshold = float(threshold)
        self.zero_tol = float(zero_tol)
        self.log_histogram = log_histogram
        self.hidden_layers: list[HiddenLayer] = []
        self.last_stats: list[ParametrizationStats] = []

    def validate_setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Run the probe on its samples before training: the forward must run on the probe batch and call every
        hidden layer."""
        self.probe_statistics(trainer, pl_module, at_setup=True)

    def run_forward(self, pl_module: nn.Module, batch: Any) -> None:
        """The probe forward of one batch: ``pl_module(input_fn(batch))`` or ``forward_fn(pl_module, batch)``."""
        if self.input_fn is None:
            self.forward_fn(pl_module, batch)
            return
        inputs = self.input_fn(batch)
        if not isinstance(inputs, Tensor):
            raise self.error(
                f"`input_fn` returned a {type(inputs).__name__} for {describe_batch(batch)}; it must return what "
                f"the model takes, a tensor [B, ...], e.g. `input_fn={input_fn_example(batch)}`."
            )
        pl_module(inputs)

    def _forward_error(self, batch: Any, error: Exception) -> MisconfigurationError:
        failed = f"on {describe_batch(batch)} ({type(error).__name__}: {error})"
        if self.input_fn is not None:
            return self.error(
                f"the probe forward `pl_module(input_fn(batch))` failed {failed}; `input_fn` must return what the "
                f"model takes, a tensor [B, ...], e.g. `input_fn={input_fn_example(batch)}`."
            )
        if self.forward_fn is not run_inputs:
            return self.error(f"`forward_fn(pl_module, batch)` failed {failed}; it must run the model on a batch.")
        return self.error(
            f"the default probe forward (`pl_module(x)` of an `(x, y)` batch, `pl_module(batch)` otherwise) failed "
            f"{failed}. Pass `input_fn=`, a function of a training batch that returns what the model takes (the "
            f"tensor its first layer receives, [B, ...]), e.g. `ParametrizationMonitor(input_fn={input_fn_example(batch)})`, "
            "or `forward_fn=lambda module, batch: ...` that runs the model on a batch."
        )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_epochs=self.every_n_epochs, num_samples=self.num_samples)

    def reset_for_new_fit(self, same_model: bool) -> None:
        super().reset_for_new_fit(same_model)
        self.last_stats = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":  # the monitor acts during training only
            return
        self.hidden_layers = self._resolve_layers(pl_module)
        found = ", ".join(
            f"layer{i}: {h.incoming_name} → {h.activation_name} ({h.kind}) → {h.outgoing_name}"
            for i, h in enumerate(self.hidden_layers)
        )
        self.info(trainer, f"hidden layers: {found}")

    def _resolve_layers(self, pl_module: pl.LightningModule) -> list[HiddenLayer]:
        if self.layers is None:
            found = find_hidden_layers(pl_module)
            if not found:
                raise self.error(
                    "found no hidden layer of the form Linear → ReLU/LeakyReLU/PReLU/ReLU6/"
                    "AbsoluteValue → Linear among the model's modules (in registration order). Pass "
                    "`layers=[(incoming Linear name, activation name, outgoing Linear name), ...]`."
                )
            return found
        modules = dict(pl_module.named_modules())
        resolved = []
        for incoming_name, activation_name, outgoing_name in self.layers:
            missing = [n for n in (incoming_name, activation_name, outgoing_name) if n not in modules]
            if missing:
                raise self.error(
                    f"no module named {missing} in the model; `layers` takes names from `model.named_modules()`."
                )
            incoming, activation, outgoing = (modules[incoming_name], modules[activation_name], modules[outgoing_name])
            kind = activation_kind(activation)
            if not isinstance(incoming, nn.Linear) or not isinstance(outgoing, nn.Linear) or kind is None:
                raise self.error(
                    f"layer ({incoming_name}, {activation_name}, {outgoing_name}) must be "
                    "(nn.Linear, ReLU/LeakyReLU/PReLU/ReLU6/AbsoluteValue, nn.Linear), got "
                    f"({type(incoming).__name__}, {type(activation).__name__}, {type(outgoing).__name__})."
                )
            if outgoing.in_features != incoming.out_features:
                raise self.error(
                    f"{outgoing_name} takes {outgoing.in_features} inputs but {incoming_name} "
                    f"has {incoming.out_features} outputs; the outgoing Linear must read the hidden units."
                )
            resolved.append(
                HiddenLayer(incoming_name, activation_name, outgoing_name, incoming, activation, outgoing, kind)
            )
        return resolved

    def probe_statistics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *, at_setup: bool = False
    ) -> list[ParametrizationStats]:
        """Every hidden layer's statistics at the current weights on the probe batch (no logging); ``at_setup``: a
        failing forward raises a `MisconfigurationError` naming ``input_fn`` and ``forward_fn``."""
        data = self.training_data(trainer, self.dataset)
        indices = fixed_subset(len(data), self.num_samples, self.seed)
        captured: list[list[Tensor]] = [[] for _ in self.hidden_layers]

        def recorder(slot: list[Tensor]) -> Callable[..., None]:
            def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
                slot.append(output.detach().reshape(-1, output.shape[-1]))

            return hook

        handles = [
            h.incoming.register_forward_hook(recorder(slot))
            for h, slot in zip(self.hidden_layers, captured, strict=True)
        ]
        try:
            with untouched_training(pl_module), torch.no_grad():
                for _, batch in load_batches(trainer, pl_module, data, indices, indices.numel(), self.seed):
                    try:
                        self.run_forward(pl_module, batch)
                    except (MisconfigurationError, torch.cuda.OutOfMemoryError):
                        raise
                    except Exception as error:
                        if not at_setup:
                            raise
                        raise self._forward_error(batch, error) from error
        finally:
            for handle in handles:
                handle.remove()
        stats = []
        for index, (layer, slot) in enumerate(zip(self.hidden_layers, captured, strict=True)):
            tensors = [layer.incoming.weight, layer.outgoing.weight, torch.cat(slot) if slot else None]
            if layer.incoming.bias is not None:
                tensors.append(layer.incoming.bias)
            broken = [t for t in tensors if t is not None and not bool(torch.isfinite(t).all())]
            if broken:
                raise FloatingPointError(
                    f"{self.name}: layer{index} ({layer.incoming_name} → {layer.activation_name} → "
                    f"{layer.outgoing_name}) has NaN or infinite weights or pre-activations at epoch "
                    f"{trainer.current_epoch}: training has diverged (lower the learning rate, clip gradients); "
                    "its statistics would be meaningless and are not computed."
                )
            if not slot:
                raise self.error(
                    f"layer{index}'s {layer.incoming_name} was not called by the probe "
                    "forward; pass `forward_fn=` that runs the model on a batch, or `layers=` that it uses."
                )
            stats.append(
                parametrization_statistics(
                    layer.incoming.weight,
                    layer.incoming.bias,
                    layer.outgoing.weight,
                    torch.cat(slot),
                    layer.kind,
                    threshold=self.threshold,
                    zero_tol=self.zero_tol,
                )
            )
        return stats

    def run_check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, in_epoch_end: bool) -> None:
        stats = self.probe_statistics(trainer, pl_module)
        metrics: dict[str, float] = {}
        for index, layer_stats in enumerate(stats):
            metrics.update(layer_stats.to_metrics(f"stability/parametrization/layer{index}"))
        metrics = self.same_on_every_rank(trainer, metrics)
        self.finish_check(metrics, epoch)
        self.last_stats = stats
        step = self.log_step(trainer)
        self.log_metrics(trainer, pl_module, metrics, in_epoch_end=in_epoch_end, epoch=epoch, step=step)
        if self.log_histogram:
            for index, layer_stats in enumerate(stats):
                balance = layer_stats.balance[layer_stats.live]
                if balance.numel():
                    log_histogram(trainer, f"stability/parametrization/layer{index}/balance", balance, step)
        for index, s in enumerate(stats):
            self.info(
                trainer,
                f"epoch {epoch} layer{index}: {s.dead_count}/{s.units} dead, balance "
                f"spread {s.balance_spread:.4g}, max cos {s.max_cosine:.4f} {s.max_cosine_pair}, min cos "
                f"{s.min_cosine:.4f} {s.min_cosine_pair}, {s.parallel_pairs} parallel / {s.opposite_pairs} "
                f"opposite pairs, {s.zero_units} zero-weight units",
            )
