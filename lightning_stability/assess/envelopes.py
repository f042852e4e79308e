"""The envelopes of a check's best Theorem A and B floors as values (docs/theory.md §5, §6), for the figure that
draws them against the empirical margin distribution: the figure takes these numbers and computes no theory."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .. import theory

__all__ = ["EnvelopeCurve", "envelope_curves"]

POINTS = 512
"""Points of each envelope on its window ``0 < λ ≤ η + η0``."""


@dataclass(frozen=True)
class EnvelopeCurve:
    """One floor's envelope ``U`` on its window, as the figure draws it.

    Attributes:
        name: ``"A"`` or ``"B"``.
        delta: ``[P]`` margins ``δ = λ − η`` (float64).
        envelope: ``[P]`` ``U(λ)`` at those points.
        eta0: the window's end: beyond it ``F`` may exceed ``U`` without breaking the floor.
        floor: the floor the envelope certifies.
        zeta: the floor's ``ζ`` (the height the figure needs to show).
    """

    name: str
    delta: Tensor
    envelope: Tensor
    eta0: float
    floor: float
    zeta: float


def envelope_curves(report: theory.StabilityReport, points: int = POINTS) -> tuple[EnvelopeCurve, EnvelopeCurve]:
    """The envelopes ``U_A`` of ``report``'s Theorem A floor (§5, `lightning_stability.theory.condition_a_envelope`)
    and ``U_B`` of its Theorem B floor (§6, `lightning_stability.theory.condition_b_envelope`), each at ``points − 1``
    equally spaced ``λ ∈ (0, η + η0]`` with the floor's own parameters."""
    a, b = report.theorem_a, report.theorem_b
    functions = (
        ("A", a, theory.condition_a_envelope(a.condition_a_constant, a.gamma, a.lam0, a.zeta)),
        (
            "B",
            b,
            theory.condition_b_envelope(
                b.kappa_lower, b.dilation, b.zeta, b.min_cluster_mass, b.min_width, b.eta + b.eta0
            ),
        ),
    )
    curves = []
    for name, floor, envelope in functions:
        lam = torch.linspace(0, floor.eta + floor.eta0, points, dtype=torch.float64)[1:]
        curves.append(EnvelopeCurve(name, lam - floor.eta, envelope(lam), floor.eta0, floor.floor, floor.zeta))
    return curves[0], curves[1]
