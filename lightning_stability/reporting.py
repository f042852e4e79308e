"""Writing a check's results: loggers outside epoch ends, TensorBoard histograms and figures, margin files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor

from . import theory

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from .collection import MarginPass

__all__ = ["envelope_figure", "log_figure", "log_histogram", "log_out_of_epoch", "save_margin_file"]


def log_out_of_epoch(
    trainer: pl.Trainer, metrics: dict[str, float], step: int | None = None, epoch: int | None = None
) -> None:
    """Send ``metrics`` straight to every logger (checks outside an epoch end).

    ``step`` defaults to the current global step; ``epoch``, if given, is logged as ``epoch`` like Lightning
    does for metrics logged with ``self.log``.
    """
    if not trainer.is_global_zero:
        return
    if epoch is not None:
        metrics = {**metrics, "epoch": epoch}  # an int, as Lightning logs it
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step if step is None else step)


def _tensorboard_writers(trainer: pl.Trainer) -> list:
    if not trainer.is_global_zero:
        return []
    return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


def log_histogram(trainer: pl.Trainer, tag: str, values: Tensor, step: int | None = None) -> None:
    """Log a TensorBoard histogram of ``values`` on every TensorBoardLogger (rank zero), at ``step``."""
    step = trainer.global_step if step is None else step
    for writer in _tensorboard_writers(trainer):
        writer.add_histogram(tag, values.detach().cpu().to(torch.float64).numpy(), global_step=step)


def envelope_figure(report: theory.StabilityReport, margins: Tensor, weights: Tensor):
    """A matplotlib figure of the empirical ``F(−η+λ)`` against the Theorem A and B envelopes (THEORY.md §5, §6)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    order = torch.argsort(margins)
    sorted_margins, cumulative = margins[order], torch.cumsum(weights[order], 0)
    axes.step(sorted_margins.numpy(), cumulative.numpy(), where="post", label="empirical F", color="black")
    a, b = report.theorem_a, report.theorem_b
    for floor, envelope, colour, name in (
        (a, theory.condition_a_envelope(a.condition_a_constant, a.gamma, a.lam0, a.zeta), "tab:blue", "A"),
        (
            b,
            theory.condition_b_envelope(
                b.kappa_lower, b.dilation, b.zeta, b.min_cluster_mass, b.min_width, b.eta + b.eta0
            ),
            "tab:orange",
            "B",
        ),
    ):
        lam = torch.linspace(0, floor.eta + floor.eta0, 512, dtype=torch.float64)[1:]
        axes.plot(
            (lam - floor.eta).numpy(), envelope(lam).numpy(), color=colour, label=f"U_{name} (floor {floor.floor:.3f})"
        )
    axes.set_xlim(report.margin_min - 0.5, max(report.theorem_a.eta0, report.theorem_b.eta0) + 0.5)
    axes.set_ylim(0, max(a.zeta, b.zeta) * 1.2)
    axes.set_xlabel("margin δ")
    axes.set_ylabel("mass F(δ)")
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure


def log_figure(
    trainer: pl.Trainer,
    tag: str,
    report: theory.StabilityReport,
    margins: Tensor,
    weights: Tensor,
    step: int | None = None,
) -> None:
    """Log :func:`envelope_figure` on every TensorBoardLogger (rank zero), at ``step``."""
    writers = _tensorboard_writers(trainer)
    if writers:
        step = trainer.global_step if step is None else step
        figure = envelope_figure(report, margins.cpu(), weights.cpu())
        for writer in writers:
            writer.add_figure(tag, figure, global_step=step, close=False)


def save_margin_file(
    directory: Path, epoch: int, global_step: int, margin_pass: MarginPass, report: theory.StabilityReport
) -> Path:
    """Write one check's per-sample vectors and report to ``directory/margins_epoch=E_step=S.pt``."""
    directory.mkdir(parents=True, exist_ok=True)
    label = "start" if epoch < 0 else f"{epoch:04d}"
    path = directory / f"margins_epoch={label}_step={global_step:08d}.pt"
    torch.save(
        {
            "epoch": epoch,
            "global_step": global_step,
            "indices": margin_pass.indices,
            "targets": margin_pass.targets,
            "margins": margin_pass.margins,
            "losses": margin_pass.losses,
            "num_classes": margin_pass.num_classes,
            "report": report.to_dict(),
        },
        path,
    )
    return path
