"""Assess: the pure step of a check (docs/design.md) — from a margin pass, the weights and the previous check to
one typed result (`assess_exact` → `ExactCheck`, `assess_subset` → `SubsetCheck`; `CheckResult` is either); the
comparison with the previous check, the blame sets, the names logged, and the stop rule every monitor shares. No
Lightning is imported here."""

from .check import CheckResult, CheckSettings, ExactCheck, SubsetCheck, assess_exact, assess_subset, sample_weights
from .history import Comparison, InstabilityHistory, PreviousCheck, compare_checks
from .patience import Patience

__all__ = [
    "CheckResult",
    "CheckSettings",
    "Comparison",
    "ExactCheck",
    "InstabilityHistory",
    "Patience",
    "PreviousCheck",
    "SubsetCheck",
    "assess_exact",
    "assess_subset",
    "compare_checks",
    "sample_weights",
]
