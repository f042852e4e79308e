"""The results of :func:`~lightning_stability.theory.certify`: the search grids and the reported floors (§7)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .envelope import DEFAULT_PARTITION_SIZE
from .validation import check_finite_number

__all__ = ["SEARCH_PARTITION_SIZE", "CertificateGrid", "StabilityReport", "TheoremAFloor", "TheoremBFloor"]

SEARCH_PARTITION_SIZE = DEFAULT_PARTITION_SIZE
"""Pieces of the upper sums of ``Φ`` in :func:`certify` and the ``theorem_*_floor`` functions (the same, so that
their floors reproduce each other): 4096, within 1e-3 relative of ``Φ`` (1024 was measured at 1.1e-3 for
``γ = 0.5``)."""


@dataclass(frozen=True)
class CertificateGrid:
    """The documented parameter grids over which :func:`certify` searches (THEORY.md §7).

    Attributes:
        zetas: targets for ``ζ``; ``η0`` is the smallest margin with ``F(η0) ≥ ζ`` (up to 1e-9 relative) and
            the reported ``ζ = F(η0)``.
        tau_fractions: ``η = −min δ + τ`` with ``τ = fraction × s``, ``s = (median δ − min δ)``
            (or the margin range, or 1, if that is zero); ``B_η = ∅`` by construction.
        gammas: exponents ``γ`` of Condition A, with ``λ0 = D = η + η0``.
        dilation: ``Λ`` of Condition B; ``m = ζ`` and the window ends at ``w = η0``.
        width_fractions: resolutions ``h = fraction × (η0 − min δ)`` of Condition B.
        cluster_mass_fractions: smallest cluster masses ``m_min = fraction × ζ``.
        radius_ratio: ratio ``q`` of the radius grid of the Condition B bracket.
        centre_spacing_fraction: centres of the Condition B bracket run over the grid ``(fraction × h)ℤ``
            (a certified bracket costing ``O(R · span / (fraction × h))``, see
            :func:`~lightning_stability.theory.condition_b_constant`); ``None`` uses exact breakpoints.
        mass_etas: thresholds ``η`` at which good and bad masses are reported.
        partition_size: pieces of the upper sum of ``Φ`` (THEORY.md §4) of the reported floors.
        search_partition_size: pieces of the upper sums that rank the candidates (coarser, cheaper: every
            candidate's bound is still rigorous; only the best candidate of each theorem is then recomputed with
            ``partition_size``, so the reported floor is as tight as ``theorem_a_floor``/``theorem_b_floor`` give).
    """

    zetas: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
    tau_fractions: tuple[float, ...] = (1 / 1024, 1 / 256, 1 / 64, 1 / 16, 1 / 4)
    gammas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    dilation: float = 2.0
    width_fractions: tuple[float, ...] = (1 / 8,)
    cluster_mass_fractions: tuple[float, ...] = (0.05,)
    radius_ratio: float = 1.05
    centre_spacing_fraction: float | None = 1 / 8
    mass_etas: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
    partition_size: int = SEARCH_PARTITION_SIZE
    search_partition_size: int = 1024

    def __post_init__(self) -> None:
        for name in ("zetas", "tau_fractions", "gammas", "width_fractions", "cluster_mass_fractions", "mass_etas"):
            value = getattr(self, name)
            if not isinstance(value, tuple | list) or len(value) == 0:
                raise ValueError(f"grid `{name}` must be a non-empty sequence of numbers, got {value!r}.")
            object.__setattr__(self, name, tuple(check_finite_number(v, name) for v in value))
        if any(not 0 < z <= 1 for z in self.zetas):
            raise ValueError(f"grid `zetas` must lie in (0, 1], got {self.zetas}.")
        if any(f <= 0 for f in self.tau_fractions + self.gammas + self.width_fractions):
            raise ValueError("grids `tau_fractions`, `gammas` and `width_fractions` must be positive.")
        if any(not 0 <= f <= 1 for f in self.cluster_mass_fractions):
            raise ValueError(f"grid `cluster_mass_fractions` must lie in [0, 1], got {self.cluster_mass_fractions}.")
        if not self.dilation > 1:
            raise ValueError(f"grid `dilation` must be > 1, got {self.dilation}.")
        if not 1 < self.radius_ratio < self.dilation:
            raise ValueError(f"grid `radius_ratio` must lie in (1, dilation), got {self.radius_ratio}.")
        if self.centre_spacing_fraction is not None and not 0 < self.centre_spacing_fraction <= 1:
            raise ValueError(
                f"grid `centre_spacing_fraction` must be None or in (0, 1], got {self.centre_spacing_fraction}."
            )
        for name in ("partition_size", "search_partition_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"grid `{name}` must be a positive integer, got {getattr(self, name)}.")


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
    """Everything THEORY.md §1–§7 says about one parameter vector's margins.

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
            out[f"good_mass/eta={eta:g}"] = good
            out[f"bad_mass/eta={eta:g}"] = bad
        for prefix, floor in (("theorem_a", self.theorem_a), ("theorem_b", self.theorem_b)):
            for key, value in dataclasses.asdict(floor).items():
                out[f"{prefix}/{key}"] = float(value)
        return out
