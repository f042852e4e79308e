"""Logger output: every metric, histogram and figure the monitors emit goes through this module.

* `log_epoch_metrics` — ``pl_module.log`` at a training epoch's end (Lightning aggregates and syncs);
* `log_metrics_now` — straight to every logger, for values produced outside an epoch end (the check
  before training, a catch-up check after resuming, per-step values);
* `log_histogram`, `log_figure` — TensorBoard histograms and figures;
* `check_log_step` — the logger step a check's values belong to, so scalars, histograms and figures of
  one check line up.

Only rank zero writes; every function is a no-op on the other ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from matplotlib.figure import Figure

__all__ = ["check_log_step", "log_epoch_metrics", "log_figure", "log_histogram", "log_metrics_now"]


def check_log_step(trainer: pl.Trainer, epoch: int) -> int:
    """The logger step of a check of ``epoch``: where Lightning logs that epoch's epoch-end metrics.

    Lightning logs ``self.log(on_epoch=True)`` values of a training epoch at ``_batches_that_stepped - 1`` (its
    last training step); a catch-up check of a finished epoch after resuming, and the histograms and figures of
    a check, use the same step, so one check's scalars, histograms and figures line up and a resumed run logs at
    the steps of an uninterrupted one. The check before training (``epoch = -1``) logs at the current step.
    """
    stepped = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step)
    return max(stepped - 1, 0) if epoch >= 0 else stepped


def log_epoch_metrics(pl_module: pl.LightningModule, metrics: dict[str, float]) -> None:
    """``pl_module.log`` every metric at epoch end as a float64 tensor (float32 on MPS, which has no float64).

    ``self.log`` would turn a Python float into float32; float64 tensors keep the certificates' full precision in
    ``trainer.callback_metrics`` and the loggers. The values are identical on every rank; under DDP ``sync_dist``
    averages identical values (exact) and keeps Lightning from warning that epoch-level values are not
    synchronised.
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
            logger=bool(trainer.loggers),  # no "self.log(logger=True) but you have no logger" warnings
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


def _tensorboard_writers(trainer: pl.Trainer) -> list[Any]:
    if not trainer.is_global_zero:
        return []
    return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


def log_histogram(trainer: pl.Trainer, tag: str, values: Tensor, step: int | None = None) -> None:
    """Log a TensorBoard histogram of ``values`` on every TensorBoardLogger (rank zero), at ``step``."""
    step = trainer.global_step if step is None else step
    for writer in _tensorboard_writers(trainer):
        writer.add_histogram(tag, values.detach().cpu().to(torch.float64).numpy(), global_step=step)


def log_figure(trainer: pl.Trainer, tag: str, make_figure: Callable[[], Figure], step: int | None = None) -> None:
    """Log ``make_figure()`` on every TensorBoardLogger (rank zero), at ``step``; the figure is drawn only if a
    TensorBoardLogger is there to receive it."""
    writers = _tensorboard_writers(trainer)
    if writers:
        step = trainer.global_step if step is None else step
        figure = make_figure()
        for writer in writers:
            writer.add_figure(tag, figure, global_step=step, close=False)
