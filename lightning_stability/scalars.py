"""Scalars to the loggers and to ``trainer.callback_metrics``: every monitor's values go through here.

They go to every logger's ``log_metrics`` in one call per check, at the check's own step (`check_log_step`); at an epoch end the monitors also ``pl_module.log(logger=False)`` the values
EarlyStopping and ModelCheckpoint may read (`log_epoch_metrics`). Only global rank zero writes to the loggers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .lightning_internals import batches_that_stepped

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["check_log_step", "log_check_scalars", "log_epoch_metrics", "log_metrics_now"]


def check_log_step(trainer: pl.Trainer) -> int:
    """The logger step of a check: the number of training batches after which the optimizers stepped so far
    (`lightning_internals.batches_that_stepped`, kept across a resume).

    So every check is its own point: the check before training logs at 0, the check of epoch ``e`` at the count
    after that epoch — at least one more than the previous check, even with one batch an epoch (Lightning logs its
    own epoch-end values one step earlier, at its last training step, where the check before training and the
    first epoch's check would fall together). A catch-up check of a finished epoch after resuming, a check at
    fit end, and a check's histograms, figures, text and margin file use the same step, so they line up and a
    resumed run logs at the steps of an uninterrupted one.
    """
    return batches_that_stepped(trainer)


def log_epoch_metrics(pl_module: pl.LightningModule, metrics: dict[str, float]) -> None:
    """``pl_module.log(logger=False)`` every metric at epoch end as a float64 tensor (float32 on MPS, which has no
    float64): into ``trainer.callback_metrics`` only; the loggers get the values from `log_metrics_now`, in one
    call per check.

    ``self.log`` would turn a Python float into float32; float64 tensors keep the certificates' full precision in
    ``trainer.callback_metrics``. The values are identical on every rank; under DDP ``sync_dist`` averages
    identical values (exact) and keeps Lightning from warning that epoch-level values are not synchronised.
    """
    trainer = pl_module.trainer
    dtype = torch.float32 if pl_module.device.type == "mps" else torch.float64
    for name, value in metrics.items():
        pl_module.log(
            name,
            torch.tensor(value, dtype=dtype, device=pl_module.device),
            on_step=False,
            on_epoch=True,
            sync_dist=trainer.world_size > 1,
            logger=False,
            batch_size=1,
        )


def log_metrics_now(
    trainer: pl.Trainer, metrics: dict[str, float], step: int | None = None, epoch: int | None = None
) -> None:
    """Send ``metrics`` straight to every logger (rank zero) at ``step`` (default: the current global step).

    ``epoch``, if given, is logged as ``epoch`` (an int), as Lightning does for values logged with ``self.log``.
    """
    if not trainer.is_global_zero:
        return
    if epoch is not None:
        metrics = {**metrics, "epoch": epoch}
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step if step is None else step)


def log_check_scalars(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    metrics: dict[str, float],
    *,
    step: int | None,
    epoch: int | None,
    in_epoch_end: bool,
    logger_only: tuple[str, ...] = (),
) -> None:
    """A check's scalars: to every logger at ``step`` in one call (`log_metrics_now`, one row of a CSV log); at an
    epoch end also, except the names under ``logger_only``, into ``trainer.callback_metrics``
    (`log_epoch_metrics`), where EarlyStopping and ModelCheckpoint read them."""
    log_metrics_now(trainer, metrics, step=step, epoch=None if epoch is None else max(epoch, 0))
    if in_epoch_end:
        log_epoch_metrics(
            pl_module, {name: value for name, value in metrics.items() if not name.startswith(logger_only)}
        )
