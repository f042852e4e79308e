"""Every result dataclass of the functional core, in one place (docs/theory.md §5–§7, §9).

* `TheoremAFloor`, `TheoremBFloor`, `StabilityReport` — what
  `certify` reports (§5–§7);
* `ConditionBResult` — the Condition B bracket of
  `condition_b_constant` (§6);
* `DataClusterReport` — the data check of `data_clusters` (§9).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["ConditionBResult", "DataClusterReport", "StabilityReport", "TheoremAFloor", "TheoremBFloor"]


@dataclass(frozen=True)
class TheoremAFloor:
    """Theorem A: ``A(t) ≥ 1 − Φ(U_A)/log 2`` at every later epoch whose loss does not exceed today's."""

    floor: float
    eta: float
    eta0: float
    zeta: float
    gamma: float
    lam0: float
    condition_a_constant: float
    envelope_bound: float


@dataclass(frozen=True)
class TheoremBFloor:
    """Theorem B: ``A(t) ≥ 1 − Φ(U_B)/log 2``, with ``U_B`` built on the certified ``κ_lo``."""

    floor: float
    eta: float
    eta0: float
    zeta: float
    dilation: float
    max_mass: float
    min_cluster_mass: float
    min_width: float
    kappa_lower: float
    kappa_upper: float
    envelope_bound: float


@dataclass(frozen=True)
class StabilityReport:
    """Everything docs/theory.md §1–§7 says about one parameter vector's margins.

    Attributes:
        num_samples, num_classes: ``N`` and ``K``.
        accuracy: ``A = μ(δ > 0)``.
        loss: the exact loss if it was given, else ``None``.
        loss_lower, loss_upper: the sandwich ``Σμ g(δ) ≤ L ≤ Σμ f_K(δ)`` (§2).
        loss_floor: Theorem 0 floor ``1 − L/log 2`` from ``loss`` if given, else from ``loss_upper`` (§3).
        margin_loss_floor: Theorem 0 floor from ``loss_upper``; every theorem floor is below it (§7).
        margin_min: ``min δ``.
        mass_etas, good_masses, bad_masses: ``μ(G_η)`` and ``μ(B_η)`` on the grid ``mass_etas``.
        theorem_a, theorem_b: the best floors of Theorems A and B with their parameters.
    """

    num_samples: int
    num_classes: int
    accuracy: float
    loss: float | None
    loss_lower: float
    loss_upper: float
    loss_floor: float
    margin_loss_floor: float
    margin_min: float
    mass_etas: tuple[float, ...]
    good_masses: tuple[float, ...]
    bad_masses: tuple[float, ...]
    theorem_a: TheoremAFloor
    theorem_b: TheoremBFloor

    def to_dict(self) -> dict[str, float]:
        """Flat ``name -> float`` view for loggers (``loss`` is omitted when unknown)."""
        out: dict[str, float] = {
            "num_samples": float(self.num_samples),
            "accuracy": self.accuracy,
            "loss_lower": self.loss_lower,
            "loss_upper": self.loss_upper,
            "loss_floor": self.loss_floor,
            "margin_loss_floor": self.margin_loss_floor,
            "margin_min": self.margin_min,
        }
        if self.loss is not None:
            out["loss"] = self.loss
        for eta, good, bad in zip(self.mass_etas, self.good_masses, self.bad_masses, strict=True):
            out[f"good_mass/eta_{eta:g}"] = good
            out[f"bad_mass/eta_{eta:g}"] = bad
        for prefix, floor in (("theorem_a", self.theorem_a), ("theorem_b", self.theorem_b)):
            for key, value in dataclasses.asdict(floor).items():
                out[f"{prefix}/{key}"] = float(value)
        return out


@dataclass(frozen=True)
class SubsetEstimate:
    """What a random subset of the training samples says about the whole set, for one check (§11).

    Attributes:
        draws: ``n``, the number of draws (with replacement, from ``μ``).
        distinct_samples: how many different samples the draws hit.
        confidence: ``1 − α`` of every bound below (each holds on its own, for this check's parameters).
        accuracy: the fraction of draws with ``δ > 0`` (an unbiased estimate of ``A``).
        accuracy_lower: the Clopper–Pearson lower bound: ``P(A ≥ accuracy_lower) ≥ confidence``.
        dkw_epsilon: the Dvoretzky–Kiefer–Wolfowitz band half-width ``ε``.
        quantiles: level ``q`` → ``(lower, estimate, upper)``: ``Q_n(q − ε) ≤ Q(q) ≤ Q_n(q + ε)`` on the band.
    """

    draws: int
    distinct_samples: int
    confidence: float
    accuracy: float
    accuracy_lower: float
    dkw_epsilon: float
    quantiles: dict[float, tuple[float, float, float]]

    def to_dict(self) -> dict[str, float]:
        """Flat ``name -> float`` view for loggers (infinite quantile bounds are left out)."""
        out = {
            "draws": float(self.draws),
            "distinct_samples": float(self.distinct_samples),
            "confidence": self.confidence,
            "accuracy": self.accuracy,
            "accuracy_lower": self.accuracy_lower,
            "dkw_epsilon": self.dkw_epsilon,
        }
        for level, (lower, value, upper) in self.quantiles.items():
            out[f"margin_quantile/q_{level:g}"] = value
            for name, bound in (("lower", lower), ("upper", upper)):
                if math.isfinite(bound):
                    out[f"margin_quantile/q_{level:g}_{name}"] = bound
        return out


@dataclass(frozen=True)
class ConditionBResult:
    """Certified bracket of the Condition B constant ``κ_B`` (docs/theory.md §6).

    Attributes:
        lower: ``κ_lo ≤ κ_B`` (``inf`` when no interval is admissible). Condition B is certified iff ``> 1``.
        upper: ``κ_hi ≥ κ_B``, the smallest ``μ(ΛI)/μ(I)`` over admissible intervals with a grid radius.
        witness: ``(centre, radius)`` of the admissible interval giving ``upper``, or ``None``.
        witness_indices: positions (in the input) of the positive-weight values inside the witness interval.
        num_radii: number of grid radii ``R + 1`` that were evaluated.
    """

    lower: float
    upper: float
    witness: tuple[float, float] | None
    witness_indices: Tensor = field(repr=False)
    dilation: float
    max_mass: float
    min_width: float
    min_cluster_mass: float
    window_end: float
    radius_ratio: float
    centre_spacing: float | None
    num_radii: int

    @property
    def certified(self) -> bool:
        """Whether Condition B is proven to hold with a constant ``> 1``."""
        return self.lower > 1.0


@dataclass(frozen=True)
class DataClusterReport:
    """Result of `data_clusters`.

    Attributes:
        constant_lower, constant_upper: ``min_u κ_lo(u)`` and ``min_u κ_hi(u)`` over the sampled directions. The
            data condition's constant over the sampled directions lies in this bracket; ``constant_upper ≤ 1``
            (up to rounding) exhibits an isolated cluster.
        worst_direction: the unit direction ``u`` (``[d]``) whose ``κ_hi`` is smallest.
        worst_direction_kind: ``"random"``, ``"principal"`` or ``"extra"``.
        witness: ``(centre, radius)`` of the slab ``{x : |⟨u, x⟩ − c| ≤ r}`` on the worst direction, or ``None``.
        witness_indices: indices of the (positive-weight) samples inside that slab.
        directions: ``[D, d]`` unit directions, in the order random, principal, extra.
        kinds: the kind of every direction.
        lower, upper: ``[D]`` per-direction brackets ``κ_lo(u)``, ``κ_hi(u)``.
        resolutions: ``[D]`` per-direction ``h`` (``resolution`` × the projection's spread).
        max_mass, min_cluster_mass, dilation: the settings used.
        num_samples: ``N``.
    """

    constant_lower: float
    constant_upper: float
    worst_direction: Tensor = field(repr=False)
    worst_direction_kind: str
    witness: tuple[float, float] | None
    witness_indices: Tensor = field(repr=False)
    directions: Tensor = field(repr=False)
    kinds: tuple[str, ...] = field(repr=False)
    lower: Tensor = field(repr=False)
    upper: Tensor = field(repr=False)
    resolutions: Tensor = field(repr=False)
    max_mass: float
    min_cluster_mass: float
    dilation: float
    num_samples: int

    @property
    def violated(self) -> bool:
        """Whether some sampled direction exhibits an isolated cluster (``κ_hi = 1`` up to 1e-12)."""
        return self.constant_upper <= 1.0 + 1e-12

    def to_dict(self) -> dict[str, float]:
        """Flat ``name -> float`` view for loggers."""
        centre, radius = self.witness if self.witness is not None else (math.nan, math.nan)
        return {
            "constant_lower": self.constant_lower,
            "constant_upper": self.constant_upper,
            "violated": float(self.violated),
            "witness_centre": centre,
            "witness_radius": radius,
            "witness_size": float(self.witness_indices.numel()),
            "num_directions": float(self.directions.shape[0]),
            "max_mass": self.max_mass,
            "min_cluster_mass": self.min_cluster_mass,
        }
