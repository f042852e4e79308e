"""One check of the `StabilityMonitor`: collect → assess → publish (docs/design.md), run by a part built from the
monitor's other parts. It goes down once and comes back once: the monitor hands it a `CheckRequest` (what the
monitor knows: the epoch, the options of this check, the counters) and gets a `CheckOutcome` (the result, its
scalars and cost, the notes to warn, whether to stop) — the monitor keeps the results and decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from ..assess import CheckResult, CheckSettings, InstabilityHistory, Patience, assess_exact, assess_subset
from ..assess import sample_weights as weights_of
from ..assess.names import run_constants, subset_constants
from ..dynamics.samples import SampleStatistics
from ..records import MarginPass
from ..summaries import instability_reason, stop_sentence
from .base import same_on_every_rank
from .check_cost import CheckCost
from .collect import MarginSource
from .publish import CheckPublisher, Publication
from .run_outputs import RunOutputs
from .setup_checks import no_certificate_reason, ties_note
from .subset_draw import SubsetDraw

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["CheckOutcome", "CheckRequest", "CheckRunner"]


@dataclass(frozen=True)
class CheckRequest:
    """What the monitor asks of one check.

    Attributes:
        epoch: the checked epoch (``-1``: before training); ``in_epoch_end``: run in ``on_train_epoch_end``.
        exact: the exact full check (else the statistical mode's subset check); ``settings``: its options.
        weights: the resolved ``weights`` (a tensor by dataset index, ``"uniform"`` or ``"balanced"``) and
            ``weights_source`` where they come from; ``user_loader``: ``dataloader=`` was given.
        checks_done: the monitor's checks before this one; ``step``: the check's logger step.
        data_cluster: the data check's witness indices (``None``: no data check).
        approximate: the training data is random; ``every_n_epochs``, ``full_every_n_epochs``: the schedule.
    """

    epoch: int
    in_epoch_end: bool
    exact: bool
    settings: CheckSettings
    weights: str | Tensor
    weights_source: str
    user_loader: bool
    checks_done: int
    step: int
    data_cluster: Tensor | None
    approximate: bool
    every_n_epochs: int
    full_every_n_epochs: int | None


@dataclass(frozen=True)
class CheckOutcome:
    """What one check found, for the monitor to keep and decide on.

    Attributes:
        margin_pass: the pass; ``result``: its assessment, ``None`` when there is no certificate (non-finite class
            scores, or no sample left to certify: training stops).
        metrics: the scalars it logged (the same on every rank); ``cost``: its ``stability_cost/…`` values.
        line: its console line; ``notes``: the warnings to give (once each); ``stop``, ``reason``: the stop rule's
            decision on this rank and why.
    """

    margin_pass: MarginPass
    result: CheckResult | None
    metrics: dict[str, float]
    cost: dict[str, float]
    line: str
    notes: list[str]
    stop: bool
    reason: str | None


class CheckRunner:
    """Runs the checks of one fit with the monitor's parts (built with them, when a fit starts)."""

    def __init__(
        self,
        source: MarginSource,
        draw: SubsetDraw,
        statistics: SampleStatistics,
        history: InstabilityHistory,
        stop_rule: Patience,
        cost: CheckCost,
        outputs: RunOutputs,
        publisher: CheckPublisher,
    ) -> None:
        self.source, self.draw, self.statistics, self.history = source, draw, statistics, history
        self.stop_rule, self.cost, self.outputs, self.publisher = stop_rule, cost, outputs, publisher
        self.constants_logged: set[bool] = set()  # which kinds of check (exact: True) logged their constants
        self.ties_noted = False

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, check: CheckRequest) -> CheckOutcome:
        """Collect the margin pass, assess it, record it in the history and the stop rule, publish it."""
        started = self.cost.clock()
        drawn = None
        if not check.exact:
            drawn, _ = self.draw.draw(self.source.num_samples(trainer), self.source.draw_weights(check.weights))
        margin_pass = self.source.run(trainer, pl_module, drawn)
        passed = self.cost.clock()
        if margin_pass.non_finite.numel() or not margin_pass.indices.numel():
            why = no_certificate_reason(margin_pass, check.epoch, self.source.ignore_index)
            return CheckOutcome(margin_pass, None, {}, {}, "", [why], True, why)
        result = self._assess(trainer, margin_pass, check)
        assessed = self.cost.clock()
        stop = self.stop_rule.update(result.comparison.event)
        notes, reason = self._record(result, check)
        metrics = result.metrics if result.exact else same_on_every_rank(trainer, result.metrics)
        constants = None  # logged once per kind of check, built only then
        if result.exact not in self.constants_logged:
            if result.exact:
                settings = (check.every_n_epochs, check.weights_source, check.settings.tol, check.approximate)
                constants = run_constants(result.report, *settings)
            else:
                constants = subset_constants(result.estimate, check.full_every_n_epochs)
        publication = Publication(
            result=result,
            metrics=metrics,
            history=self.history,
            step=check.step,
            in_epoch_end=check.in_epoch_end,
            constants=constants,
            dataset=self.source.samples_by_index(trainer),
            margins_dir=self.outputs.margins_dir(trainer),
            approximate=check.approximate,
            full_checks=check.full_every_n_epochs is not None,
            scope=self.source.scope(margin_pass.ignored, check.weights_source),
            clock=(started, passed, assessed),
            stopping=stop_sentence(check.epoch, self.stop_rule.consecutive, self.stop_rule.patience) if stop else None,
        )
        self.constants_logged.add(result.exact)
        cost, line = self.publisher.publish(trainer, pl_module, publication, self.cost)
        return CheckOutcome(margin_pass, result, metrics, cost, line, notes, stop, reason)

    def _assess(self, trainer: pl.Trainer, margin_pass: MarginPass, check: CheckRequest) -> CheckResult:
        """Fold the pass into the per-sample statistics, then assess it as an exact or a subset check."""
        forgotten = self.statistics.update(
            margin_pass.indices, margin_pass.targets, margin_pass.margins, margin_pass.losses, margin_pass.predicted
        )
        history = self.history
        if check.exact:
            return assess_exact(
                margin_pass,
                weights_of(check.weights, margin_pass, check.user_loader),
                check.settings,
                epoch=check.epoch,
                previous=history.previous,
                instability_count=history.count,
                checks_done=check.checks_done,
                forgotten=forgotten,
                blame=self.outputs.margins_dir(trainer) is not None,
                data_cluster=check.data_cluster,
            )
        return assess_subset(
            margin_pass,
            self.draw.counts_of(margin_pass.indices),
            check.settings,
            epoch=check.epoch,
            previous=history.subset_previous,
            instability_count=history.subset_count,
        )

    def _record(self, result: CheckResult, check: CheckRequest) -> tuple[list[str], str | None]:
        """Take the check into the history; the notes it gives and the stop reason of an event."""
        notes = []
        if result.exact:
            if result.comparison.samples_changed:
                notes.append("the certified samples changed since the previous check; flip masses skipped.")
            self.history.record_exact(result)
            checked = result.margin_pass
            ties = None if self.ties_noted else ties_note(checked.margins, checked.targets, checked.predicted)
            if ties is not None:
                self.ties_noted = True
                notes.append(ties)
        else:
            self.history.record_subset(result)
        if not result.comparison.event:
            return notes, None
        reason = instability_reason(result, self.stop_rule.consecutive, self.stop_rule.patience, check.settings.tol)
        return [*notes, reason], reason
