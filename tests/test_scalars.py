"""scalars.py: the monitors' values reach every logger in one call, at the given step, with ``epoch`` added; only
rank zero writes."""

from __future__ import annotations

from types import SimpleNamespace

from lightning_stability.scalars import log_metrics_now

from .helpers import RecordingLogger


def test_log_metrics_now_sends_one_call_per_logger_at_the_step() -> None:
    first, second = RecordingLogger(), RecordingLogger()
    trainer = SimpleNamespace(is_global_zero=True, loggers=[first, second], global_step=7)
    log_metrics_now(trainer, {"stability/accuracy": 0.75, "stability/loss": 0.5}, step=4, epoch=2)
    log_metrics_now(trainer, {"stability/accuracy": 0.5})
    expected = [(4, {"stability/accuracy": 0.75, "stability/loss": 0.5, "epoch": 2}), (7, {"stability/accuracy": 0.5})]
    assert first.calls == second.calls == expected


def test_only_rank_zero_writes() -> None:
    logger = RecordingLogger()
    log_metrics_now(SimpleNamespace(is_global_zero=False, loggers=[logger], global_step=0), {"stability/loss": 1.0})
    assert logger.calls == []
