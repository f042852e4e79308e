"""Assess: the pure step of a check (docs/design.md) — from a margin pass, the weights and the previous check's
state to one typed `CheckResult`; the comparison with the previous check, the blame sets, the names logged, and
the stop rule every monitor shares. No Lightning is imported here."""

from .check import CheckResult, CheckSettings, assess_check, sample_weights
from .history import Comparison, InstabilityHistory, compare_checks
from .patience import Patience

__all__ = [
    "CheckResult",
    "CheckSettings",
    "Comparison",
    "InstabilityHistory",
    "Patience",
    "assess_check",
    "compare_checks",
    "sample_weights",
]
