"""What the `StabilityMonitor` finds wrong with a user's setup before training, on one batch, and the one-time
notes of a check — each a pure function that returns the message (or ``None``), so the monitor decides whether it
is an error or a warning and says it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..distributions import MisconfigurationError
from ..records import MarginPass
from .collect import MarginSource
from .data_probe import PROBE_SIZE, Probe, reads_differ, stochastic_data_message
from .margin_pass import certified_set_masks, label_message

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = [
    "APPROXIMATE_NOTE",
    "TIES_NOTED",
    "SetupFindings",
    "check_setup",
    "inspect_first_batch",
    "label_problem",
    "label_smoothing_note",
    "no_certificate_reason",
    "probability_outputs",
    "same_kind_monitors",
    "schedule_never_checks",
    "smoke_test_note",
    "ties_note",
]

TIES_NOTED = 5
"""More margins than this exactly 0 in one check get a note: ties count as errors."""


APPROXIMATE_NOTE = (
    "the training samples differ between two passes (random augmentation?): every check certifies one random draw "
    "of the data, so its numbers are APPROXIMATE and an instability event may be noise."
)


@dataclass(frozen=True)
class SetupFindings:
    """What `check_setup` found: the weights ``μ`` and where they come from, whether the training data is random,
    the notes to warn once, and the error to raise after them (``None``: none)."""

    weights: str | Tensor
    weights_source: str
    approximate: bool
    notes: list[str]
    error: str | None


def check_setup(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    source: MarginSource,
    weights: str | Tensor | None,
    stochastic_data: str,
    fit_notes: list[str | None],
) -> SetupFindings:
    """Before training: resolve the certified samples and their weights (`MarginSource.resolve_weights`), inspect
    the first batch (`inspect_first_batch`) and, for random training data, say so — an error unless
    ``stochastic_data="approximate"`` accepts it (`lightning_stability.callbacks.data_probe`).

    Raises:
        MisconfigurationError: from `MarginSource.resolve_weights` and `inspect_first_batch`.
    """
    resolved, origin = source.resolve_weights(trainer, weights)
    probe, notes = inspect_first_batch(trainer, pl_module, source, fit_notes)
    error = None
    if probe.stochastic and stochastic_data != "approximate":
        error = stochastic_data_message(probe.indices.numel(), source.dataloader is not None)
    elif probe.stochastic:
        notes.append(APPROXIMATE_NOTE)
    return SetupFindings(resolved, origin, probe.stochastic, notes, error)


def inspect_first_batch(
    trainer: pl.Trainer, pl_module: pl.LightningModule, source: MarginSource, fit_notes: list[str | None]
) -> tuple[Probe, list[str]]:
    """Read the certified samples' first batch twice (`lightning_stability.callbacks.data_probe.reads_differ`) and
    say what is wrong with the setup before training: the notes to warn once (``fit_notes`` first, then
    `probability_outputs` and `label_smoothing_note`) with the probe, which tells random data from fixed.

    Raises:
        MisconfigurationError: for labels of the first batch outside the classes (`label_problem`).
    """
    loader = source.loader(trainer, batch_size=PROBE_SIZE)
    probe = reads_differ(trainer, pl_module, loader, source.forward_fn)
    labels = label_problem(probe.indices, probe.logits, probe.targets, source.ignore_index, source.excluded)
    if labels is not None:
        raise MisconfigurationError(labels)
    notes = [*fit_notes, probability_outputs(probe.logits), label_smoothing_note(pl_module)]
    return probe, [note for note in notes if note is not None]


def smoke_test_note(fast_dev_run: int | bool) -> str | None:
    """The note for ``fast_dev_run``: every pass covers its first batches only; no files are written."""
    if not fast_dev_run:
        return None
    return (
        f"fast_dev_run: every margin pass covers only the first {int(fast_dev_run)} batch(es), so the numbers are "
        "not the whole training set's; no files are written."
    )


def label_problem(
    indices: Tensor, logits: Tensor, targets: Tensor, ignore_index: int | None, excluded: Tensor | None
) -> str | None:
    """The error for labels of the first batch outside ``[0, K)`` that are neither ``ignore_index`` nor of weight
    zero (``excluded``, by sample index), naming the samples, the labels, ``K`` and ``ignore_index``."""
    num_classes = logits.shape[1]
    _, bad = certified_set_masks(indices, targets, num_classes, ignore_index, excluded)
    if not bool(bad.any()):
        return None
    return label_message(indices[bad], targets[bad], num_classes, ignore_index)


def label_smoothing_note(module: torch.nn.Module) -> str | None:
    """The note for a ``CrossEntropyLoss(label_smoothing > 0)`` among the module's submodules: training lowers the
    smoothed loss, not the plain cross entropy the floors speak of (docs/guide.md, "Losses other than cross
    entropy")."""
    found = sorted(
        {
            float(loss.label_smoothing)
            for loss in module.modules()
            if isinstance(loss, torch.nn.CrossEntropyLoss) and loss.label_smoothing > 0
        }
    )
    if not found:
        return None
    return (
        f"the module has CrossEntropyLoss(label_smoothing={', '.join(f'{value:g}' for value in found)}): training "
        "lowers the smoothed loss, not the plain cross entropy the floors speak of. Every floor still holds as "
        "long as the plain cross entropy of the certified samples (`stability/loss`, logged at every check) does "
        'not rise; watch it (docs/guide.md, "Losses other than cross entropy").'
    )


def probability_outputs(logits: Tensor) -> str | None:
    """The warning for class scores that look like probabilities (every row in ``[0, 1]`` summing to 1, most
    entries strictly between — exact one-hot scores are a model's logits as well): the
    monitor reads them as logits, so its loss, margins and every floor would be those of ``softmax(p)``, not of
    the model. Log-probabilities need no warning: ``softmax(log p) = p``, so margins and cross entropies are the
    model's own."""
    if logits.numel() == 0 or logits.shape[1] < 2:
        return None
    rows = logits.to(torch.float64)
    in_unit = bool(((rows >= 0) & (rows <= 1)).all())
    if not in_unit or not torch.allclose(rows.sum(dim=1), torch.ones(rows.shape[0], dtype=torch.float64), atol=1e-3):
        return None
    if float(((rows > 0) & (rows < 1)).double().mean()) < 0.5:  # mostly exact 0/1 scores: one-hot logits, not p
        return None
    return (
        "the class scores of the first batch look like probabilities (every row in [0, 1], summing to 1). The "
        "monitor reads them as logits, so its loss, margins and floors would be those of softmax(probabilities), "
        "not of your model. Return the logits (before softmax) or their log-probabilities from `forward_fn`."
    )


def schedule_never_checks(max_epochs: int | None, every_n_epochs: int, check_at_start: bool) -> str | None:
    """The warning for a run whose schedule never reaches a check: ``max_epochs < every_n_epochs`` without
    ``check_at_start`` (the check at fit end still certifies the final weights)."""
    if check_at_start or max_epochs is None or max_epochs < 0 or max_epochs >= every_n_epochs:
        return None
    return (
        f"with max_epochs={max_epochs} and every_n_epochs={every_n_epochs} no scheduled check runs; the monitor "
        "checks the final weights once at fit end. Lower `every_n_epochs` or set `check_at_start=True` for a "
        "reference to compare with."
    )


def same_kind_monitors(callbacks: Sequence[Any], monitor: Any) -> str | None:
    """The refusal for a second monitor of the same class in one Trainer: both would log the same names at the
    same steps, and whichever logs last would win in ``trainer.callback_metrics``."""
    same = [callback for callback in callbacks if type(callback) is type(monitor)]
    if len(same) < 2:
        return None
    return (
        f"the Trainer has {len(same)} {type(monitor).__name__}s; they would log the same names at the same steps "
        "and overwrite each other. Use one (e.g. certify the uniform and the class-balanced loss in two runs)."
    )


def ties_note(margins: Tensor, targets: Tensor, predicted: Tensor) -> str | None:
    """The note for a check with more than `TIES_NOTED` margins exactly 0 (a tie between the true class and
    another, common in bf16 and fp16): they count as errors (docs/theory.md §1), so the certified accuracy is
    below the argmax accuracy."""
    ties = int((margins == 0).sum())
    if ties <= TIES_NOTED:
        return None
    total = margins.numel()
    counted = int((margins > 0).sum())
    argmax = int((predicted == targets).sum())
    return (
        f"{ties} of {total} margins are exactly 0 (the true class ties with another; low precisions such as "
        f"bf16 round many scores to equal values). Ties count as errors, so {counted} samples count as correct "
        f"where the argmax picks the label for {argmax}. Certify in a higher precision to tell them apart."
    )


def no_certificate_reason(margin_pass: MarginPass, epoch: int, ignore_index: int | None) -> str:
    """Why a check has no certificate and training stops: class scores that are not finite (named by their first
    samples, as ``EarlyStopping(check_finite=True)`` stops on a non-finite metric), or nothing left to certify."""
    bad = margin_pass.non_finite
    when = "before training" if epoch < 0 else f"after epoch {epoch}"
    if bad.numel():
        first = ", ".join(str(i) for i in bad[:8].tolist()) + (", ..." if bad.numel() > 8 else "")
        many = "every one of the" if not margin_pass.indices.numel() else "for"
        return (
            f"the model's class scores are not finite (NaN or inf) {many} {bad.numel():,} sample(s) {when} "
            f"(samples {first}): no certificate is possible; training stops, as EarlyStopping(check_finite=True) does. A "
            "diverged model: lower the learning rate, clip gradients or use a higher precision."
        )
    return (
        f"every sample is outside the certified set {when} ({margin_pass.ignored} labelled "
        f"ignore_index={ignore_index} or of weight zero): nothing to certify; training stops."
    )
