"""The `StabilityMonitor`'s statistical mode: checks on a fixed random subset, labelled as estimates.

``StabilityMonitor(subset_size=n, confidence=1 − α, full_every_n_epochs=m)`` draws ``n`` training indices once,
independently with replacement from ``μ`` (`lightning_stability.theory.draw_subset`, its own seeded generator),
and at every check of an epoch that is not a full one evaluates only the distinct drawn samples — ``n / N`` of
the cost of a full pass. What it logs under ``stability_estimate/`` (docs/theory.md §11, docs/cost.md):

* ``accuracy`` (the fraction of draws with ``δ > 0``) and ``accuracy_lower``, the exact Clopper–Pearson bound:
  ``P(A ≥ accuracy_lower) ≥ 1 − α`` for the whole training set, at this check's parameters;
* ``margin_quantile/q_…`` with ``_lower`` and ``_upper``, the Dvoretzky–Kiefer–Wolfowitz band, and
  ``dkw_epsilon``;
* ``loss``, ``loss_floor``, ``theorem_a/floor``, ``theorem_b/floor``: the same quantities computed on the
  draws' empirical measure — point estimates, not certificates;
* ``instability``: 1 if the loss *of the drawn samples* fell while their accuracy fell by more than ``tol``
  since the previous subset check (an exact statement about the subset, compared on the same draws).

Every epoch with ``(epoch + 1) % full_every_n_epochs == 0`` runs the exact full check instead, with the proven
floors under ``stability/``. Instability events of both kinds count towards ``patience``. The per-sample
statistics (``samples.csv``) take in the drawn samples at every subset check, so each sample's ``checks`` counts
the checks that saw it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .. import theory
from ..distributions import MisconfigurationError
from ..loggers import log_constants, log_text

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from .stability import StabilityMonitor

__all__ = ["SubsetCheck"]


class SubsetCheck:
    """The subset of a `StabilityMonitor` in statistical mode, and the checks that use it (see the module doc).

    Args:
        size: ``n``, the number of draws.
        confidence: ``1 − α`` of every bound.
        full_every_n_epochs: run the exact full check after every m-th epoch instead (``None``: never).
        seed: seed of the draw.
    """

    def __init__(self, size: int, confidence: float, full_every_n_epochs: int | None, seed: int) -> None:
        self.size, self.confidence, self.seed = size, confidence, seed
        self.full_every_n_epochs = full_every_n_epochs
        self.indices: Tensor | None = None
        self.counts: Tensor | None = None
        self.previous: dict[str, float] | None = None
        self.instability_count = 0
        self.constants_logged = False

    def is_full(self, epoch: int) -> bool:
        """Whether the check of ``epoch`` is the exact full one (never the check before training, ``epoch = −1``)."""
        every = self.full_every_n_epochs
        return every is not None and epoch >= 0 and (epoch + 1) % every == 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "indices": self.indices,
            "counts": self.counts,
            "previous": self.previous,
            "instability_count": self.instability_count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.indices, self.counts = state["indices"], state["counts"]
        self.previous, self.instability_count = state["previous"], state["instability_count"]

    def draw(self, num_samples: int, weights: Tensor | None) -> None:
        """Draw the subset once (kept in checkpoints, so a resumed run evaluates the same samples)."""
        if self.indices is not None:
            if int(self.indices.max()) >= num_samples:
                raise MisconfigurationError(
                    f"StabilityMonitor: the checkpoint's subset reaches sample {int(self.indices.max())} but the "
                    f"training data has {num_samples} samples; resume with the same training data."
                )
            return
        mu = torch.ones(num_samples, dtype=torch.float64) if weights is None else weights
        if mu.shape != (num_samples,):
            raise MisconfigurationError(
                f"StabilityMonitor: `weights` has {mu.numel()} entries but the training data has {num_samples} "
                "samples; pass one weight per training sample."
            )
        self.indices, self.counts = theory.draw_subset(mu, self.size, self.seed)

    def run(
        self,
        monitor: StabilityMonitor,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        epoch: int,
        in_epoch_end: bool,
    ) -> None:
        """One subset check of ``epoch``: pass over the drawn samples, estimates, events, logging, stop."""
        started = monitor.cost.clock()
        if self.indices is None and monitor.subset_state is not None:  # restored from a checkpoint
            self.load_state_dict(monitor.subset_state)
        data = monitor.training_dataset_size(trainer)
        self.draw(data, monitor.full_weights())
        assert self.indices is not None and self.counts is not None
        margin_pass = monitor.margin_pass_over(trainer, pl_module, self.indices)
        passed = monitor.cost.clock()
        # the per-sample statistics (docs/samples.md) count the checks that saw each sample: subset ones too
        monitor.samples.statistics.update(
            margin_pass.indices, margin_pass.targets, margin_pass.margins, margin_pass.losses, margin_pass.predicted
        )
        # the pass covers the drawn samples sorted by index (fewer under fast_dev_run): their draw counts
        positions = torch.searchsorted(self.indices, margin_pass.indices)
        counts = self.counts[positions]
        estimate = theory.subset_estimate(
            margin_pass.margins, counts, confidence=self.confidence, levels=monitor.quantiles
        )
        weights = counts.to(torch.float64)
        loss = float((weights * margin_pass.losses).sum() / weights.sum())
        report = theory.certify(
            margin_pass.margins, margin_pass.num_classes, weights=weights, loss=loss, **monitor.grid
        )
        computed = monitor.cost.clock()

        metrics = {f"stability_estimate/{key}": value for key, value in estimate.to_dict().items()}
        for key in ("draws", "distinct_samples", "confidence"):
            metrics.pop(f"stability_estimate/{key}")
        metrics.update(
            {
                "stability_estimate/loss": loss,
                "stability_estimate/loss_floor": report.loss_floor,
                "stability_estimate/theorem_a/floor": report.theorem_a.floor,
                "stability_estimate/theorem_b/floor": report.theorem_b.floor,
                "stability_estimate/check_epoch": float(epoch),
            }
        )
        event = False
        if self.previous is not None:
            event = theory.instability_event(
                self.previous["loss"], self.previous["accuracy"], loss, estimate.accuracy, monitor.tol
            )
        self.previous = {"loss": loss, "accuracy": estimate.accuracy}
        self.instability_count += int(event)
        monitor.subset_state = self.state_dict()
        monitor.consecutive_instabilities = monitor.consecutive_instabilities + 1 if event else 0
        metrics["stability_estimate/instability"] = float(event)
        metrics["stability_estimate/instability_count"] = float(self.instability_count)
        cost = monitor.cost.metrics(passed - started, computed - passed)
        metrics = monitor.same_on_every_rank(trainer, metrics)

        monitor.finish_check(metrics, epoch)
        monitor.last_estimate, monitor.last_pass = estimate, margin_pass
        step = monitor.log_step(trainer, epoch)
        monitor.log_check_metrics(trainer, pl_module, metrics, cost, in_epoch_end=in_epoch_end, epoch=epoch, step=step)
        if not self.constants_logged:
            log_constants(
                trainer,
                {
                    "stability_estimate/draws": float(estimate.draws),
                    "stability_estimate/distinct_samples": float(estimate.distinct_samples),
                    "stability_estimate/confidence": estimate.confidence,
                    "stability_estimate/full_every_n_epochs": float(self.full_every_n_epochs or 0),
                },
            )
            self.constants_logged = True
        summary = self.summary(estimate, report, epoch, event)
        log_text(trainer, "stability/summary", summary, step)
        monitor.info(trainer, summary)
        reason = None
        stop = monitor.stop_on_instability and monitor.consecutive_instabilities >= monitor.patience
        if event:
            reason = (
                f"instability on the subset at epoch {epoch}: the loss of the {estimate.draws} drawn samples fell "
                f"while their accuracy fell; {monitor.consecutive_instabilities} consecutive event(s), "
                f"patience {monitor.patience}"
            )
            monitor.warn(trainer, reason)
        monitor.decide_stop(trainer, stop, reason)

    def summary(self, estimate: theory.SubsetEstimate, report: theory.StabilityReport, epoch: int, event: bool) -> str:
        """The plain-words line of a subset check: what is bounded, what is only estimated."""
        where = "before training" if epoch < 0 else f"epoch {epoch}"
        text = (
            f"**Estimate** ({where}, {estimate.draws} random draws of the training samples, confidence "
            f"{estimate.confidence:g}): training accuracy {estimate.accuracy:.4f}, at least "
            f"{estimate.accuracy_lower:.4f} with probability ≥ {estimate.confidence:g} (Clopper–Pearson). "
            f"Floors on the draws (estimates, not certificates): loss {report.loss_floor:.4f}, "
            f"Theorem A {report.theorem_a.floor:.4f}, Theorem B {report.theorem_b.floor:.4f}."
        )
        if event:
            text += " Instability on the drawn samples: their loss fell while their accuracy fell."
        if self.full_every_n_epochs is None:
            text += " No full exact check is scheduled (`full_every_n_epochs=None`)."
        return text


def check_subset_options(
    subset_size: int | None, confidence: float, full_every_n_epochs: int | None, weights: Any
) -> None:
    """Validate the statistical mode's options at construction (raise `MisconfigurationError` with the fix)."""
    if subset_size is None:
        if full_every_n_epochs is not None:
            raise MisconfigurationError(
                "StabilityMonitor: `full_every_n_epochs` only applies with `subset_size=`; every check is full "
                "without it."
            )
        return
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 1:
        raise MisconfigurationError(f"StabilityMonitor: `subset_size` must be a positive integer, got {subset_size!r}.")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise MisconfigurationError(
            f"StabilityMonitor: `confidence` must lie in (0, 1), e.g. 0.95; got {confidence!r}."
        )
    if full_every_n_epochs is not None and (
        isinstance(full_every_n_epochs, bool) or not isinstance(full_every_n_epochs, int) or full_every_n_epochs < 1
    ):
        raise MisconfigurationError(
            f"StabilityMonitor: `full_every_n_epochs` must be a positive integer or None, got {full_every_n_epochs!r}."
        )
    if isinstance(weights, str) and weights == "balanced":
        raise MisconfigurationError(
            "StabilityMonitor: `weights='balanced'` needs every label before the subset can be drawn; with "
            "`subset_size=` pass the weights as a tensor (e.g. 1 / class count of each sample's label)."
        )
