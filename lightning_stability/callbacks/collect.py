"""Collect: the samples a `StabilityMonitor` certifies and the margin pass over them (docs/design.md).

`MarginSource` knows where the certified samples come from — ``dataset=``, ``dataloader=`` or the dataset behind
the training loader (with its ``collate_fn``), restricted to the samples the training sampler draws from
(`lightning_stability.callbacks.training_data.training_sampler_support`) — builds the sequential, DDP-sharded loader over them (all of them,
or a subset's indices) and runs the margin pass through the Trainer's device transfer and precision
(`lightning_stability.callbacks.training_data.device_transfer`), gathering every rank's vectors into one
`lightning_stability.records.MarginPass`.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..distributions import MisconfigurationError
from ..records import MarginPass
from ..summaries import scope_sentence
from .forward_output import ForwardFn
from .margin_loader import margin_dataloader, positioned_loader
from .margin_pass import MarginCollector, run_margin_pass
from .training_data import (
    TrainingData,
    device_transfer,
    find_training_data,
    training_sampler_support,
    training_sampler_weights,
)

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["MarginSource"]


class MarginSource:
    """The certified samples of a `StabilityMonitor` and its margin pass over them.

    Args:
        dataset: the samples to certify, or ``None`` for the training loader's dataset.
        dataloader: a finite loader over the samples, iterated as given (not with DDP).
        batch_size: the pass's batch size (default ``max(256, 4 × the training batch size)``).
        num_workers: workers of the pass's loader.
        forward_fn: ``forward_fn(pl_module, batch) -> (logits [B, K], targets [B])``.
    """

    def __init__(
        self,
        dataset: Dataset | None,
        dataloader: DataLoader | None,
        batch_size: int | None,
        num_workers: int,
        forward_fn: ForwardFn,
        ignore_index: int | None = None,
    ) -> None:
        self.dataset, self.dataloader = dataset, dataloader
        self.batch_size, self.num_workers, self.forward_fn = batch_size, num_workers, forward_fn
        self.ignore_index = ignore_index
        self.collector = MarginCollector()
        self.excluded: Tensor | None = None
        """``[N]`` bools by sample index: the samples of weight zero (set by `resolve_weights`)."""
        self.support: Tensor | None = None
        """The ascending dataset indices the training sampler draws from, ``None`` for every sample (set by
        `resolve_weights`): the certified set, so a train/validation split by sampler certifies the train part."""
        self.dataset_size = 0
        """``N``, the length of the dataset the indices refer to (set by `resolve_weights`)."""

    def resolve_weights(self, trainer: pl.Trainer, option: str | Tensor | None) -> tuple[str | Tensor, str]:
        """The weights ``μ`` the checks use and where they come from (``"uniform"``, ``"balanced"``, ``"tensor"``,
        ``"sampler"`` or ``"sampler indices"``): the ``weights`` option if given, else the training loader's
        ``WeightedRandomSampler`` weights (training lowers that weighted loss), else how often the sampler lists
        each index (when it lists some twice), else uniform. Without ``dataset=``/``dataloader=`` the certified
        samples are those the training sampler draws from (`support`); samples of weight zero are left out of
        every pass (`excluded`).

        Raises:
            MisconfigurationError: if a weights tensor (given, or the sampler's) has not one entry per sample, or
                the training sampler's support cannot be known and neither ``dataset=`` nor a ``weights`` tensor
                says what to certify.
        """
        self.support, counts = None, None
        user_data = self.dataset is not None or self.dataloader is not None
        if self.dataloader is None:
            self.dataset_size = self.num_samples(trainer)
        if not user_data:
            support = training_sampler_support(trainer, self.dataset_size, "StabilityMonitor")
            if support.unknown is not None and not isinstance(option, Tensor):
                raise MisconfigurationError(
                    f"StabilityMonitor: the training loader draws its samples with a {support.unknown}, whose "
                    "samples the monitor cannot know, so it cannot tell which samples training lowers the loss of. "
                    "Pass `dataset=` with exactly the training samples (e.g. "
                    "`StabilityMonitor(dataset=torch.utils.data.Subset(dataset, train_indices))`), or `weights=` "
                    "with one weight per dataset sample (0 for samples training never draws)."
                )
            self.support, counts = support.indices, support.counts
        weights: str | Tensor | None = option
        source = option if isinstance(option, str) else "tensor"
        if option is None:
            sampled = None if self.dataloader is not None else training_sampler_weights(trainer)
            if sampled is not None:
                weights, source = sampled, "sampler"
            elif counts is not None and self.support is not None:
                weights = torch.zeros(self.dataset_size, dtype=torch.float64)
                weights[self.support] = counts
                source = "sampler indices"
            else:
                weights, source = "uniform", "uniform"
        assert weights is not None
        self.excluded = None
        if isinstance(weights, Tensor):
            weights = weights.detach().to(torch.float64).reshape(-1).cpu()
            if self.dataloader is None:
                if weights.numel() != self.dataset_size:
                    what = "the training loader's WeightedRandomSampler has" if source == "sampler" else "`weights` has"
                    raise MisconfigurationError(
                        f"StabilityMonitor: {what} {weights.numel()} entries but the training dataset has "
                        f"{self.dataset_size} samples; pass `weights=` with one weight per training sample, in "
                        "dataset order."
                    )
            zero = weights == 0
            self.excluded = zero if bool(zero.any()) else None
        return weights, source

    def draw_weights(self, weights: str | Tensor) -> Tensor | None:
        """``μ`` over the whole dataset for the statistical mode's draw: the weights tensor, zero outside the
        `support`; ``None`` for uniform over every sample."""
        if self.support is None:
            return weights if isinstance(weights, Tensor) else None
        inside = torch.zeros(self.dataset_size, dtype=torch.float64)
        inside[self.support] = 1.0
        return inside * weights if isinstance(weights, Tensor) else inside

    def scope(self, ignored: int, weights_source: str) -> str:
        """What the certified set is, where that differs from "every sample, uniform": the sampler's indices
        (`support_sentence`), samples left out and weights taken from the training sampler
        (`lightning_stability.summaries.scope_sentence`)."""
        parts = (self.support_sentence(), scope_sentence(ignored, weights_source, self.ignore_index))
        return " ".join(part for part in parts if part)

    def support_sentence(self) -> str:
        """What the certified set is when the training sampler draws from part of the dataset, e.g. ``"1,200 of
        1,797 samples of the dataset: the training sampler's indices."``; ``""`` otherwise."""
        if self.support is None:
            return ""
        return (
            f"{self.support.numel():,} of {self.dataset_size:,} samples of the dataset: the training sampler's indices."
        )

    def training_data(self, trainer: pl.Trainer) -> TrainingData:
        """``dataset=`` or the dataset behind the train dataloader, with its ``collate_fn`` and batch size."""
        return find_training_data(
            trainer, self.dataset, "StabilityMonitor", "`dataset=` (a map-style dataset) or `dataloader=`"
        )

    def num_samples(self, trainer: pl.Trainer) -> int:
        """``N``, the number of training samples the checks cover."""
        return len(cast(Sized, self.training_data(trainer).dataset))

    def samples_by_index(self, trainer: pl.Trainer) -> Dataset | None:
        """The dataset the pass's indices refer to (``None`` with ``dataloader=``, whose samples have no index)."""
        return None if self.dataloader is not None else self.training_data(trainer).dataset

    def loader(self, trainer: pl.Trainer, batch_size: int | None = None, indices: Tensor | None = None) -> DataLoader:
        """The pass's loader, yielding ``(sample indices, batch)``; over ``indices`` if given, else over the
        `support`."""
        world_size, rank = trainer.world_size, trainer.global_rank
        if self.dataloader is not None:
            if world_size > 1:
                raise MisconfigurationError(
                    "StabilityMonitor(dataloader=...) cannot be sharded across processes; under DDP pass "
                    "`dataset=` instead and the monitor shards it with a DistributedSampler."
                )
            return positioned_loader(self.dataloader)
        data = self.training_data(trainer)
        batch_size = batch_size or self.batch_size or max(256, 4 * (data.batch_size or 64))
        return margin_dataloader(
            data.dataset,
            batch_size,
            collate_fn=data.collate_fn,
            num_workers=self.num_workers,
            world_size=world_size,
            rank=rank,
            indices=self.support if indices is None else indices,
            pin_memory=trainer.strategy.root_device.type == "cuda",
        )

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, indices: Tensor | None = None) -> MarginPass:
        """The margin pass over the certified samples (``indices`` only, if given), gathered across ranks."""
        loader = self.loader(trainer, indices=indices)
        self.collector = self.collector.to(pl_module.device)
        fast_dev_run = getattr(trainer, "fast_dev_run", 0)  # set by the Trainer's debugging connector
        return run_margin_pass(
            pl_module,
            loader,
            self.forward_fn,
            self.collector,
            move_to_device=device_transfer(trainer, pl_module),
            forward_context=trainer.precision_plugin.forward_context,
            max_batches=int(fast_dev_run) if fast_dev_run else None,
            ignore_index=self.ignore_index,
            excluded=self.excluded,
        )
