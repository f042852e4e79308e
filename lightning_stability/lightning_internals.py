"""Every access of the package to a private attribute of Lightning or torch, one small function each.

Lightning (both distributions, ``lightning`` and ``pytorch_lightning``), its command line's argparse and torch keep some of what the monitors
need in private attributes: the step at which Lightning logs epoch-end values, ModelCheckpoint's and
EarlyStopping's resolved schedules, TensorBoard's file writer. No other module of the package touches a name
with a leading underscore of an object it does not own; each function here names the version its access was
read from, and ``tests/test_lightning_internals.py`` pins each one against the installed Lightning (both
distributions) and torch, so an upgrade that moves one fails a test named after the function.

This module imports neither Lightning nor torchmetrics (nor torch): it only reads and writes the objects it is
given, so any module may import it, Lightning-free ones included.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

__all__ = [
    "align_checkpoint_schedule",
    "autograd_function_class",
    "batches_that_stepped",
    "checkpoint_every_n_epochs",
    "checkpoint_every_n_train_steps",
    "checkpoint_saves_at_train_epoch_end",
    "checkpoint_train_time_interval",
    "early_stopping_checks_on_train_epoch_end",
    "help_formatter_hiding",
    "tensorboard_file_writer",
    "user_sampler",
]


# ---------------------------------------------------------------------------------------------------- the Trainer


def batches_that_stepped(trainer: pl.Trainer) -> int:
    """The training batches after which the optimizers stepped so far in this fit (kept across a resume):
    ``trainer.fit_loop.epoch_loop._batches_that_stepped``, the step Lightning gives its loggers.

    Lightning logs ``self.log(on_step=True)`` values at this count and a training epoch's
    ``self.log(on_epoch=True)`` values at this count minus one (``_FitLoop.on_advance_end`` lowers it by one
    around ``update_train_epoch_metrics``). ``trainer.global_step`` if the attribute is missing (it differs
    from this count only with several optimizers or manual optimisation). Read from Lightning 2.6.6
    (``loops/training_epoch_loop.py``, ``loops/fit_loop.py``,
    ``trainer/connectors/logger_connector/logger_connector.py``).
    """
    return int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))


# ---------------------------------------------------------------------------------------------------- ModelCheckpoint


def checkpoint_saves_at_train_epoch_end(callback: ModelCheckpoint, trainer: pl.Trainer) -> bool:
    """Whether ``callback`` (a ModelCheckpoint) saves its per-epoch checkpoints at training-epoch end rather than
    at validation end: Lightning's own rule, ``ModelCheckpoint._should_save_on_train_epoch_end(trainer)``.

    The rule reads ``trainer.num_val_batches``, which is known once the validation dataloaders are loaded: from
    ``on_train_start`` on (the sanity check or ``_FitLoop.on_run_start`` loads them whenever the first epoch
    validates, and the count is only read when every epoch validates), not at ``setup`` or ``on_fit_start``.
    Read from Lightning 2.6.6 (``callbacks/model_checkpoint.py``): the constructor's ``save_on_train_epoch_end``
    if given; otherwise false with a time-based ``val_check_interval`` or with ``check_val_every_n_epoch != 1``
    (``None`` included), true without validation batches, and else whether validation runs once per epoch
    (``val_check_interval == 1.0``).
    """
    return bool(callback._should_save_on_train_epoch_end(trainer))


def checkpoint_every_n_epochs(callback: ModelCheckpoint) -> int:
    """``callback``'s resolved ``every_n_epochs`` (``ModelCheckpoint._every_n_epochs``): saves after every
    ``n``-th epoch, never per epoch if 0 (1 if none of ``every_n_epochs``, ``every_n_train_steps`` and
    ``train_time_interval`` was given). Read from Lightning 2.6.6 (``ModelCheckpoint.__init_triggers``)."""
    return int(callback._every_n_epochs)


def checkpoint_every_n_train_steps(callback: ModelCheckpoint) -> int:
    """``callback``'s resolved ``every_n_train_steps`` (``ModelCheckpoint._every_n_train_steps``): saves after
    every ``n``-th optimizer step, never if 0. Read from Lightning 2.6.6 (``ModelCheckpoint.__init_triggers``)."""
    return int(callback._every_n_train_steps)


def checkpoint_train_time_interval(callback: ModelCheckpoint) -> timedelta | None:
    """``callback``'s ``train_time_interval`` (``ModelCheckpoint._train_time_interval``): saves during training
    whenever this much time has passed, ``None`` if it does not. Read from Lightning 2.6.6
    (``ModelCheckpoint.__init_triggers``)."""
    interval: timedelta | None = callback._train_time_interval
    return interval


def align_checkpoint_schedule(
    callback: ModelCheckpoint, *, save_on_train_epoch_end: bool | None = None, every_n_epochs: int | None = None
) -> None:
    """Change ``callback``'s schedule as its constructor would have set it from ``save_on_train_epoch_end`` and
    ``every_n_epochs`` (each left as it is if ``None``): ``ModelCheckpoint._save_on_train_epoch_end`` (read by
    `checkpoint_saves_at_train_epoch_end`, i.e. by ``on_train_epoch_end`` and ``on_validation_end``) and
    ``ModelCheckpoint._every_n_epochs`` (read by the same hooks). Lightning has no public setter; call before
    the first epoch ends. The callback's ``state_key`` includes ``every_n_epochs``. Read from Lightning 2.6.6
    (``callbacks/model_checkpoint.py``)."""
    if save_on_train_epoch_end is not None:
        callback._save_on_train_epoch_end = bool(save_on_train_epoch_end)
    if every_n_epochs is not None:
        callback._every_n_epochs = int(every_n_epochs)


# ---------------------------------------------------------------------------------------------------- EarlyStopping


def early_stopping_checks_on_train_epoch_end(callback: EarlyStopping) -> bool:
    """Whether ``callback`` (an EarlyStopping) runs its check at training-epoch end rather than at validation end
    (``EarlyStopping._check_on_train_epoch_end``). Its constructor's ``check_on_train_epoch_end`` if given,
    else resolved in ``setup`` to ``val_check_interval == 1.0 and check_val_every_n_epoch == 1``; call after
    the Trainer's ``setup`` (before it, an unresolved ``None`` reads as false). Read from Lightning 2.6.6
    (``callbacks/early_stopping.py``)."""
    return bool(callback._check_on_train_epoch_end)


# ---------------------------------------------------------------------------------------------------- TensorBoard


def tensorboard_file_writer(experiment: Any) -> Any:
    """The ``FileWriter`` of a TensorBoardLogger's ``experiment`` (torch's ``SummaryWriter``, or tensorboardX's),
    recreated if it was closed: ``SummaryWriter._get_file_writer()``, as Lightning's own
    ``TensorBoardLogger.log_hyperparams`` writes its HParams summaries. Its ``add_summary(summary, step)`` writes
    a ``Summary`` protobuf to the run's event file. Read from torch 2.13 (``torch/utils/tensorboard/writer.py``)
    and Lightning 2.6.6 (``lightning_fabric/loggers/tensorboard.py``)."""
    return experiment._get_file_writer()


# ---------------------------------------------------------------------------------------------------- samplers


def user_sampler(sampler: Any) -> Any:
    """The user's sampler behind a ``DistributedSamplerWrapper`` (Lightning wraps a custom sampler so under DDP:
    the wrapper's ``dataset`` is a ``_DatasetSamplerWrapper`` whose ``_sampler`` is the original); any other
    sampler unchanged. Read from Lightning 2.6.6 (``lightning_fabric/utilities/distributed.py``)."""
    inner = getattr(sampler, "dataset", None)
    if type(sampler).__name__ == "DistributedSamplerWrapper" and type(inner).__name__ == "_DatasetSamplerWrapper":
        return getattr(inner, "_sampler")  # noqa: B009 (``inner`` is typed Any | None)
    return sampler


# ---------------------------------------------------------------------------------------------------- autograd


def autograd_function_class(node: Any) -> Any:
    """The custom ``torch.autograd.Function`` class behind a node of an autograd graph (a ``grad_fn``), or ``None``
    for torch's own operations: ``BackwardCFunction._forward_cls``. Read from torch 2.13
    (``torch/autograd/function.py``)."""
    return getattr(node, "_forward_cls", None)


# ---------------------------------------------------------------------------------------------------- LightningCLI


def help_formatter_hiding(formatter: type, hidden: frozenset[str]) -> type:
    """A subclass of ``formatter`` (jsonargparse's ``DefaultHelpFormatter``, which LightningCLI's parser uses) whose
    help texts leave the class paths ``hidden`` out of their ``known subclasses: a, b, c)`` lists. It overrides
    ``HelpFormatter._get_help_string(action)``, the hook argparse calls for every option's help text and where
    jsonargparse appends the list (argparse has no public one). Read from Python 3.11's ``argparse`` and
    jsonargparse 4.x (``_formatters.py``)."""
    marker = "known subclasses: "

    class HidingHelpFormatter(formatter):
        def _get_help_string(self, action: Any) -> str:
            text: str = super()._get_help_string(action)
            head, found, rest = text.partition(marker)
            listed, closed, tail = rest.partition(")")
            if not found or not closed:
                return text
            kept = [path for path in listed.split(", ") if path not in hidden]
            return f"{head}{marker}{', '.join(kept)}){tail}"

    return HidingHelpFormatter
