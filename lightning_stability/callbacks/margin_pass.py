"""The exact margin pass: per-sample margins over a whole dataset, DDP-safe.

Per batch only ``O(batch)`` vectors are kept (sample index, target, margin, cross entropy, predicted class), never the
``N × K`` logits. Across ranks the vectors are gathered by a torchmetrics `Metric` with
``dist_reduce_fx="cat"`` states; the padding duplicates a `DistributedSampler` adds
are removed by sample index, so every rank ends with the same vectors, sorted by index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchmetrics import Metric

from ..distributions import MisconfigurationError
from ..records import MarginPass
from ..theory import margins_and_cross_entropy
from .forward_output import ForwardFn, check_forward_output, forward_batch
from .training_data import untouched_training

__all__ = [
    "CHUNK_SCORES",
    "MarginCollector",
    "MarginRecorder",
    "certified_set_masks",
    "label_message",
    "run_margin_pass",
]


class MarginCollector(Metric):
    """Concatenated per-sample vectors of a margin pass, gathered across ranks by torchmetrics."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = None
    indices: list[Tensor]
    targets: list[Tensor]
    margins: list[Tensor]
    losses: list[Tensor]
    predicted: list[Tensor]
    non_finite: list[Tensor]
    ignored: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("indices", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")
        self.add_state("margins", default=[], dist_reduce_fx="cat")
        self.add_state("losses", default=[], dist_reduce_fx="cat")
        self.add_state("predicted", default=[], dist_reduce_fx="cat")
        self.add_state("non_finite", default=[], dist_reduce_fx="cat")
        self.add_state("ignored", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(
        self,
        indices: Tensor,
        targets: Tensor,
        margins: Tensor,
        losses: Tensor,
        predicted: Tensor,
        non_finite: Tensor | None = None,
        ignored: int = 0,
    ) -> None:
        self.non_finite.append(indices.new_empty(0) if non_finite is None else non_finite.long())
        self.ignored += ignored
        self.indices.append(indices.long())
        self.targets.append(targets.long())
        self.margins.append(margins.to(torch.float64))
        self.losses.append(losses.to(torch.float64))
        self.predicted.append(predicted.long())

    def compute(self) -> dict[str, Tensor]:
        """Vectors sorted by sample index, each index once (DistributedSampler padding removed)."""

        def cat(state: Any) -> Tensor:
            if isinstance(state, list):
                return state[0] if len(state) == 1 else torch.cat(state)  # one update: no copy
            return state

        extra = {"non_finite": torch.unique(cat(self.non_finite)), "ignored": self.ignored}
        indices = cat(self.indices)
        if bool((indices[1:] > indices[:-1]).all()):  # one process, sequential loader: already sorted and unique
            return {
                **extra,
                "indices": indices,
                "targets": cat(self.targets),
                "margins": cat(self.margins),
                "losses": cat(self.losses),
                "predicted": cat(self.predicted),
            }
        order = torch.argsort(indices, stable=True)
        indices = indices[order]
        keep = torch.ones_like(indices, dtype=torch.bool)
        keep[1:] = indices[1:] != indices[:-1]
        chosen = order[keep]
        return {
            **extra,
            "indices": indices[keep],
            "targets": cat(self.targets)[chosen],
            "margins": cat(self.margins)[chosen],
            "losses": cat(self.losses)[chosen],
            "predicted": cat(self.predicted)[chosen],
        }


CHUNK_SCORES = 1 << 21
"""Class scores (``batch × K`` entries) a `MarginRecorder` holds before it reduces them to per-sample vectors."""


class MarginRecorder:
    """Per-sample ``(index, target, margin, loss, predicted class)`` vectors of a pass, handed to a
    `MarginCollector` once.

    The logits of consecutive batches are held on their device until they add up to ``chunk_scores`` class scores
    (2²¹ by default: 8 MB of float32), then reduced to the five ``O(batch)`` vectors in one validated call. So the
    memory is ``O(N)`` plus one chunk (never the ``N × K`` logits), the per-sample arithmetic runs as a few large
    tensor operations instead of a dozen small ones per batch, and the validation reads the device once per chunk
    instead of once per batch. One ``update`` at the end spares the metric's per-call bookkeeping; the gather
    across ranks is the collector's.
    """

    def __init__(
        self, chunk_scores: int = CHUNK_SCORES, *, ignore_index: int | None = None, excluded: Tensor | None = None
    ) -> None:
        self.chunk_scores = chunk_scores
        self.ignore_index, self.excluded = ignore_index, excluded
        self.parts: tuple[list[Tensor], ...] = ([], [], [], [], [])
        self.pending: list[tuple[Tensor, Tensor, Tensor]] = []
        self.pending_scores = 0
        self.non_finite: list[Tensor] = []
        self.ignored = 0

    def record(self, indices: Tensor, logits: Tensor, targets: Tensor) -> None:
        """Keep one batch; reduce the held batches when they reach ``chunk_scores`` class scores."""
        self.pending.append((indices, logits, targets))
        self.pending_scores += logits.numel()
        if self.pending_scores >= self.chunk_scores:
            self.flush()

    def flush(self) -> None:
        """Compute and keep the margins, cross entropies and predicted classes of the held batches (validated:
        finite, labels in range)."""
        if not self.pending:
            return
        batches, self.pending, self.pending_scores = self.pending, [], 0
        device = batches[0][1].device
        indices = torch.cat([batch[0] for batch in batches]).to(device)
        logits = torch.cat([batch[1] for batch in batches])
        targets = torch.cat([batch[2].to(device) for batch in batches])
        indices, logits, targets = self._certified_rows(indices, logits, targets)
        if not indices.numel():  # every row left out (ignored, of weight zero or non-finite): nothing to reduce
            return
        try:
            margins, losses = margins_and_cross_entropy(logits, targets)
        except ValueError as error:
            raise ValueError(f"StabilityMonitor: the model's outputs are invalid: {error}") from error
        for part, vector in zip(self.parts, (indices, targets, margins, losses, logits.argmax(dim=1)), strict=True):
            part.append(vector)

    def _certified_rows(self, indices: Tensor, logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The rows that are certified: not labelled ``ignore_index``, not of weight zero (``excluded``), with
        finite class scores. Ignored rows are counted, non-finite ones kept by index; a label outside
        ``[0, K)`` that is not ``ignore_index`` is an error naming the samples and the labels."""
        if self.excluded is not None and self.excluded.device != indices.device:
            self.excluded = self.excluded.to(indices.device)  # once per pass, not once per chunk
        outside, label_error = certified_set_masks(indices, targets, logits.shape[1], self.ignore_index, self.excluded)
        non_finite = ~outside & ~torch.isfinite(logits).all(dim=1) if logits.is_floating_point() else None
        dropped = outside if non_finite is None else outside | non_finite
        if not bool((dropped | label_error).any()):  # the usual case: one host sync, no copies
            return indices, logits, targets
        if bool(label_error.any()):
            raise ValueError(
                label_message(indices[label_error], targets[label_error], logits.shape[1], self.ignore_index)
            )
        self.ignored += int(outside.sum())
        if non_finite is not None:
            self.non_finite.append(indices[non_finite])
        keep = ~dropped
        return indices[keep], logits[keep], targets[keep]

    def hand_over(self, collector: MarginCollector) -> None:
        """Pass everything recorded to ``collector`` in one update."""
        self.flush()
        non_finite = torch.cat(self.non_finite) if self.non_finite else None
        if self.parts[0]:
            vectors = []
            for part in self.parts:  # free each list of pieces as soon as its vector exists
                vectors.append(torch.cat(part))
                part.clear()
            indices, targets, margins, losses, predicted = vectors
            collector.update(indices, targets, margins, losses, predicted, non_finite, self.ignored)
        elif non_finite is not None or self.ignored:
            empty = torch.empty(0, dtype=torch.long)
            collector.update(empty, empty, empty.double(), empty.double(), empty, non_finite, self.ignored)


def certified_set_masks(
    indices: Tensor, targets: Tensor, num_classes: int, ignore_index: int | None, excluded: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``(outside, wrong_label)`` per row: outside the certified set (labelled ``ignore_index``, or of weight zero:
    ``excluded`` by sample index), and inside it with a label that is not one of the ``num_classes`` classes. The
    margin pass and the fit-start label check both use it."""
    outside = torch.zeros_like(targets, dtype=torch.bool)
    if ignore_index is not None:
        outside |= targets == ignore_index
    if excluded is not None:
        outside |= excluded[indices.to(excluded.device)].to(targets.device)
    return outside, ~outside & ((targets < 0) | (targets >= num_classes))


def label_message(indices: Tensor, labels: Tensor, num_classes: int, ignore_index: int | None) -> str:
    """What is wrong with labels outside ``[0, K)``: the samples, the labels, ``K`` and ``ignore_index``."""
    shown = ", ".join(f"{int(i)}: {int(y)}" for i, y in zip(indices[:8].tolist(), labels[:8].tolist(), strict=True))
    more = f" (and {indices.numel() - 8} more)" if indices.numel() > 8 else ""
    ignore = (
        f"`ignore_index={ignore_index}` marks labels to leave out"
        if ignore_index is not None
        else "`ignore_index=None` leaves no label out"
    )
    one_based = " (1-based labels?)" if int(labels.min()) >= 1 and int(labels.max()) == num_classes else ""
    return (
        f"StabilityMonitor: labels outside the {num_classes} classes [0, {num_classes - 1}] the model scores{one_based}, "
        f"at samples {{index: label}} {{{shown}}}{more}; {ignore}. Fix the labels or the number of classes, pass "
        "`ignore_index=` for the label your loss ignores, or give those samples weight zero (`weights=`)."
    )


def run_margin_pass(
    module: torch.nn.Module,
    loader: DataLoader,
    forward_fn: ForwardFn,
    collector: MarginCollector,
    *,
    move_to_device: Callable[[Any], Any] = lambda batch: batch,
    forward_context: Callable[[], Any] | None = None,
    max_batches: int | None = None,
    ignore_index: int | None = None,
    excluded: Tensor | None = None,
) -> MarginPass:
    """Evaluate ``module`` in eval mode under ``torch.inference_mode()`` over ``loader``.

    Every submodule's train/eval mode and the CPU (and current CUDA device's) RNG state are restored
    afterwards, so the pass leaves training exactly as it found it.

    Args:
        module: the model; ``forward_fn(module, batch)`` must return ``(logits [B, K], targets [B])``.
        loader: yields ``(indices, batch)`` (see `margin_loader.margin_dataloader`).
        forward_fn: maps a batch to logits and targets.
        collector: the (reset) metric that gathers the vectors across ranks.
        move_to_device: moves a batch to the model's device (e.g. ``trainer.strategy.batch_to_device``).
        forward_context: a context manager factory for precision (e.g. ``precision_plugin.forward_context``).
        max_batches: stop after this many batches (``fast_dev_run``); ``None`` covers the whole loader.
        ignore_index: the label of samples outside the certified set (counted in ``MarginPass.ignored``).
        excluded: ``[N]`` bools, by sample index: samples of weight zero, outside the certified set too.

    Samples whose class scores are not finite are left out and named in ``MarginPass.non_finite``.
    """
    num_classes = 0
    collector.reset()
    recorder = MarginRecorder(ignore_index=ignore_index, excluded=excluded)
    with untouched_training(module), torch.inference_mode():
        for batch_index, (indices, batch) in enumerate(loader):
            if max_batches is not None and batch_index >= max_batches:
                break
            logits, targets = forward_batch(module, forward_fn, batch, move_to_device, forward_context)
            num_classes = check_forward_output(logits, targets, indices, num_classes)
            recorder.record(indices, logits, targets)
    if num_classes == 0:
        raise MisconfigurationError("StabilityMonitor: the margin loader yielded no batch; nothing to certify.")
    recorder.hand_over(collector)
    gathered = collector.compute()
    ignored = int(gathered.pop("ignored"))
    # torchmetrics squeezes one-element results to 0-d tensors: keep every vector 1-d
    vectors = {key: value.cpu().reshape(-1) for key, value in gathered.items()}
    return MarginPass(num_classes=num_classes, ignored=ignored, **vectors)
