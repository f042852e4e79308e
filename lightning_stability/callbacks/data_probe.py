"""Deterministic training data or not: the `StabilityMonitor`'s probe at fit start (issue 13).

A certificate is about fixed training samples. If the dataset draws random augmentation in ``__getitem__``, or a
``dataloader=`` shuffles, two reads of the same indices give different inputs, and every check would certify one
random draw. `reads_differ` reads one batch of ``PROBE_SIZE`` samples twice (torch's, NumPy's and Python's random
streams forked and restored, so training is unchanged) and compares the model's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .forward_output import ForwardFn, check_forward_output, forward_batch
from .training_data import device_transfer, untouched_training

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["PROBE_SIZE", "Probe", "reads_differ", "stochastic_data_message"]

PROBE_SIZE = 32
"""Samples read twice at fit start to tell deterministic training data from random (augmented) data."""


@dataclass(frozen=True)
class Probe:
    """What two reads of the first batch showed: whether they differed on any rank, and the first read's sample
    indices, class scores (float64, CPU) and labels."""

    stochastic: bool
    indices: Tensor
    logits: Tensor
    targets: Tensor


def reads_differ(trainer: pl.Trainer, pl_module: pl.LightningModule, loader: Any, forward_fn: ForwardFn) -> Probe:
    """Whether two reads of the loader's first batch give different outputs on any rank, with the first read's
    outputs; the model runs in eval mode under ``inference_mode`` with the Trainer's device transfer and
    precision."""
    outputs = []
    with untouched_training(pl_module), torch.inference_mode():
        for _ in range(2):
            indices, batch = next(iter(loader))
            logits, targets = forward_batch(
                pl_module,
                forward_fn,
                batch,
                device_transfer(trainer, pl_module),
                trainer.precision_plugin.forward_context,
            )
            check_forward_output(logits, targets, indices, 0)
            outputs.append((indices.cpu(), logits.detach().double().cpu(), targets.cpu()))
    (first_indices, first_logits, first_targets), (second_indices, second_logits, second_targets) = outputs
    same = (
        torch.equal(first_indices, second_indices)
        and torch.equal(first_targets, second_targets)
        and torch.allclose(
            first_logits,
            second_logits,
            rtol=1e-5,
            atol=1e-6 * (1 + float(first_logits.nan_to_num(0.0, 0.0, 0.0).abs().max())),
            equal_nan=True,  # diverged weights: NaN both times is deterministic (the check then stops training)
        )
    )
    stochastic = bool(trainer.strategy.reduce_boolean_decision(not same, all=False))
    return Probe(stochastic, first_indices, first_logits, first_targets)


def stochastic_data_message(probed: int, user_loader: bool) -> str:
    """What was wrong and the fixes, for random training data."""
    source = "`dataloader=`" if user_loader else "the training dataset"
    return (
        f"{source} gives different samples each time it is read (the model's outputs on the same {probed} indices "
        "differed between two passes): random augmentation in the Dataset's `__getitem__`, or a shuffling loader. "
        "A certificate is about fixed training samples. Pass `dataset=` with the evaluation transforms (the same "
        "samples without augmentation), e.g. `StabilityMonitor(dataset=MyDataset(train=True, "
        "transform=eval_transform))`, or a non-shuffling `dataloader=`; or accept approximate numbers with "
        '`stochastic_data="approximate"`.'
    )
