"""Independent oracles for what the StabilityMonitor logs, computed from the model's logits.

Nothing here imports ``lightning_stability``: every expected value is recomputed from the definitions of
docs/theory.md, so a bug in ``lightning_stability.theory`` cannot hide behind a test that asks ``theory`` for the
expected value.

* §1–§3 and §8 (margins, cross entropy, accuracy with ties as errors, good/bad masses, weighted quantiles, the loss
  sandwich, Theorem 0, flip masses, the instability rule): plain Python, with the weights and every mass as exact
  ``Fraction``\\ s of the float64 inputs and the transcendental functions in 50-digit ``mpmath``
  (tests/theory/oracles.py);
* §4–§7 (the Theorem A and B floors and their parameters): tests/theory/exact_oracles.py — the exact ``ζ = F(η0)``
  and ``C_A``, the exact ``κ_B`` by the arrangement lattice (small windows), the envelopes ``U_A``, ``U_B`` written
  literally and a lower/upper Riemann bracket of ``Φ(U)``.

Tolerances (float64 throughout):

* ``REL`` = 1e-12 relative for quantities that are exact sums/differences of the inputs (masses, the loss and its
  sandwich) and ``ABS`` = 1e-15 absolute on top for masses the package obtains as ``1 − F`` (a few ulps of 1);
  margins, quantiles, ``min δ`` and 0/1 flags must be equal;
* the floors: soundness ``floor ≤ 1 − Φ_lower/log 2`` (a reported floor above the true one would be a false
  certificate) and tightness ``floor ≥ 1 − Φ_upper/log 2 − ζ D/(M log 2)``, where ``ζ D/M`` bounds how much an upper
  sum on ``M`` pieces can exceed ``Φ(U)`` (docs/theory.md §4: only the variation of ``U`` — at most ``ζ`` in all —
  inside a piece of width ``≤ D/M`` is overestimated, and ``φ_K < 1``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath as mp
import numpy as np
import torch

from tests.theory.exact_oracles import (
    as_float,
    envelope_u_a,
    envelope_u_b,
    exact_condition_a,
    floor_of,
    lattice_kappa_b,
    oracle_floors,
    riemann_phi,
)
from tests.theory.oracles import fK_mp, g_mp, naive_cross_entropy, naive_margins

REL = 1e-12
ABS = 1e-15
LOG2 = math.log(2.0)
MAX_LATTICE_VALUES = 96
"""Distinct margins in the Theorem B window up to which the exact ``κ_B`` is enumerated (80 take about 2 s)."""

# docs/theory.md §7 (the default grids) and docs/metrics.md (`quantiles=`, default 0.01, 0.05, 0.5)
DEFAULT_GRID: dict[str, Any] = dict(
    zetas=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5),
    tau_fractions=(1 / 1024, 1 / 256, 1 / 64, 1 / 16, 1 / 4),
    gammas=(0.5, 1.0, 2.0, 4.0, 8.0),
    dilation=2.0,
    width_fractions=(1 / 8,),
    cluster_mass_fractions=(0.05,),
    mass_etas=(0.0, 0.5, 1.0, 2.0, 4.0),
    search_partition_size=1024,
    partition_size=4096,
)
DEFAULT_QUANTILES = (0.01, 0.05, 0.5)


# ---------------------------------------------------------------------------------------------------- logits


def logits_at(model: torch.nn.Module, state: dict[str, torch.Tensor] | None, inputs: torch.Tensor, batch_size: int):
    """The float32 logits of ``model`` (at the weights ``state``, if given) on ``inputs``: eval mode, no grad.

    The batches are cut like the monitor's sequential margin loader (``batch_size`` samples each), so that the
    float32 matrix products round exactly as in the monitor's pass.
    """
    model = copy.deepcopy(model)
    if state is not None:
        model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return torch.cat([model(inputs[i : i + batch_size]) for i in range(0, inputs.shape[0], batch_size)])


# ---------------------------------------------------------------------------------------------------- one check


@dataclass
class OracleCheck:
    """Everything §1–§3 define for one parameter vector, from the logits, exactly."""

    num_classes: int
    targets: list[int]
    margins: list[float]  # δ_k = z_{k,y} − max_{j≠y} z_{k,j} (float64 difference of the float32 logits: exact)
    losses: list[float]  # ℓ_k = log Σ_j e^{z_kj} − z_ky, 50 digits, rounded
    mu: list[Fraction]  # normalised weights, exactly

    @classmethod
    def of(cls, logits: torch.Tensor, targets: torch.Tensor, mu: list[Fraction] | None = None) -> OracleCheck:
        n = logits.shape[0]
        mu = [Fraction(1, n)] * n if mu is None else mu
        assert len(mu) == n and sum(mu) == 1
        return cls(
            num_classes=logits.shape[1],
            targets=targets.tolist(),
            margins=naive_margins(logits, targets),
            losses=naive_cross_entropy(logits, targets),
            mu=mu,
        )

    # §1 ------------------------------------------------------------------------------------------------

    def mass(self, predicate) -> Fraction:
        return sum((m for m, d in zip(self.mu, self.margins) if m > 0 and predicate(d)), Fraction(0))

    def cdf(self, x) -> Fraction:
        """``F(x) = μ{δ ≤ x}`` for a float or a Fraction ``x``."""
        x = Fraction(x)
        return self.mass(lambda d: Fraction(d) <= x)

    @property
    def accuracy(self) -> Fraction:
        return self.mass(lambda d: d > 0)  # a tie δ = 0 is an error

    @property
    def minimum(self) -> float:
        return min(d for m, d in zip(self.mu, self.margins) if m > 0)

    def quantile(self, level: float) -> float:
        """The smallest (positive-weight) margin ``δ`` with ``F(δ) ≥ q``; ``q`` is the decimal level as written
        (``Fraction("0.01")`` = 1/100, so that ``F = 4/400`` reaches ``q = 0.01``)."""
        q = Fraction(repr(level))
        running = Fraction(0)
        for d, m in sorted((d, m) for d, m in zip(self.margins, self.mu) if m > 0):
            running += m
            if running >= q:
                return d
        raise AssertionError("F reaches 1")

    @property
    def loss(self) -> float:
        return float(mp.fsum(_mpf(m) * mp.mpf(ell) for m, ell in zip(self.mu, self.losses)))

    # §2, §3 --------------------------------------------------------------------------------------------

    @property
    def loss_bounds(self) -> tuple[float, float]:
        lower = mp.fsum(_mpf(m) * g_mp(d) for m, d in zip(self.mu, self.margins))
        upper = mp.fsum(_mpf(m) * fK_mp(d, self.num_classes) for m, d in zip(self.mu, self.margins))
        return float(lower), float(upper)

    # expected metrics ------------------------------------------------------------------------------------

    def metrics(self, epoch: int, quantiles=DEFAULT_QUANTILES, mass_etas=DEFAULT_GRID["mass_etas"]) -> dict:
        """The monitor's §1–§3 metrics of this check (not the Theorem A/B ones, see `check_theorems`)."""
        loss = self.loss
        lower, upper = self.loss_bounds
        expected = {
            "num_samples": float(len(self.margins)),
            "num_classes": float(self.num_classes),
            "check_epoch": float(epoch),
            "accuracy": float(self.accuracy),
            "loss": loss,
            "loss_lower": lower,
            "loss_upper": upper,
            "loss_floor": theorem0_floor(loss),
            "margin_loss_floor": theorem0_floor(upper),
            "margin_min": self.minimum,
        }
        for eta in mass_etas:
            expected[f"good_mass/eta_{eta:g}"] = float(self.mass(lambda d: d > eta))
            expected[f"bad_mass/eta_{eta:g}"] = float(self.mass(lambda d: d < -eta))
        for level in quantiles:
            expected[f"margin_quantile/q_{level:g}"] = self.quantile(level)
        return expected


def _mpf(fraction: Fraction):
    return mp.mpf(fraction.numerator) / fraction.denominator


def theorem0_floor(loss: float) -> float:
    """§3: ``1 − L/log 2`` clipped to ``[0, 1]``."""
    return min(1.0, max(0.0, float(1 - mp.mpf(loss) / mp.log(2))))


def uniform_mu(n: int) -> list[Fraction]:
    return [Fraction(1, n)] * n


def balanced_mu(targets: list[int]) -> list[Fraction]:
    """Every class present gets the same total mass, shared equally by its samples."""
    counts = {label: targets.count(label) for label in set(targets)}
    return [Fraction(1, len(counts) * counts[label]) for label in targets]


def tensor_mu(weights: torch.Tensor) -> list[Fraction]:
    raw = [Fraction(w) for w in weights.double().tolist()]
    total = sum(raw)
    return [w / total for w in raw]


# ---------------------------------------------------------------------------------------------------- §8


def comparison(previous: OracleCheck | None, current: OracleCheck, tol: float = 0.0) -> dict[str, float]:
    """§8 between two checks of the same samples: the event flag, ``loss_rose`` and the flip masses."""
    if previous is None:
        return {"instability": 0.0, "loss_rose": 0.0}
    event = current.loss < previous.loss and current.accuracy < previous.accuracy - Fraction(tol)
    forgotten = sum((m for m, a, b in zip(current.mu, previous.margins, current.margins) if a > 0 >= b), Fraction(0))
    learned = sum((m for m, a, b in zip(current.mu, previous.margins, current.margins) if a <= 0 < b), Fraction(0))
    return {
        "instability": float(event),
        "loss_rose": float(current.loss > previous.loss),
        "flip_forgotten": float(forgotten),
        "flip_learned": float(learned),
    }


def expected_sequence(checks: list[OracleCheck], epochs: list[int], tol: float = 0.0, **kwargs) -> list[dict]:
    """The §1–§3 and §8 metrics of consecutive checks, with the running ``instability_count``."""
    out, count, previous = [], 0, None
    for number, (check, epoch) in enumerate(zip(checks, epochs, strict=True), start=1):
        expected = check.metrics(epoch, **kwargs)
        expected.update(comparison(previous, check, tol))
        count += int(expected["instability"])
        expected["instability_count"] = float(count)
        expected["stable_checks"] = float(number - count)
        out.append(expected)
        previous = check
    return out


# ---------------------------------------------------------------------------------------------------- comparing


CONSTANT_KEYS = frozenset({"num_samples", "num_classes", "theorem_b/dilation"})
"""Values that do not change during a run: compared when a check's metrics carry them (the package may log them
once instead)."""


def canonical(metrics: dict) -> dict[str, float]:
    """The metric names without their group: ``stability/<key>`` and ``stability_diagnostics/<key>`` → ``<key>`` (the
    oracles check values, whichever group of charts the package files a value under)."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        group, _, key = name.partition("/")
        assert group.startswith("stability") and key, name
        assert key not in out, f"{key} logged twice"
        out[key] = float(value)
    return out


def assert_metrics(actual: dict, expected: dict, exact_keys=("margin_min", "margin_quantile", "check_epoch")) -> None:
    """Every expected metric was logged (constants: if the check carries them) and equals the oracle: exactly for
    margins and counters, else to ``REL`` relative plus ``ABS``."""
    actual = canonical(actual)
    missing = set(expected) - set(actual) - CONSTANT_KEYS
    assert not missing, f"metrics not logged: {sorted(missing)}"
    bad = {}
    for key, value in expected.items():
        if key not in actual:
            continue
        got = actual[key]
        exact = any(part in key for part in exact_keys) or key in (
            "instability",
            "instability_count",
            "stable_checks",
            "loss_rose",
        )
        ok = got == value if exact else math.isclose(got, value, rel_tol=REL, abs_tol=ABS)
        if not ok:
            bad[key] = (got, value)
    assert not bad, f"logged (got, oracle) differ: {bad}"


# ---------------------------------------------------------------------------------------------------- §4–§7


def _bracket_tol(zeta: float, eta: float, eta0: float, pieces: int) -> float:
    """How far an upper sum on ``pieces`` pieces can push a floor below the true one: ``ζ D/(M log 2)``."""
    return zeta * (eta + eta0) / (pieces * LOG2)


def _check_floor(result: dict, U, check: OracleCheck, zeta: float, pieces: int, name: str) -> tuple[float, float]:
    """Soundness and tightness of a reported floor against the Riemann bracket of ``Φ(U)``; returns the bracket of
    the true floor."""
    eta, eta0 = result["eta"], result["eta0"]
    phi_lower, phi_upper, floor_hi, floor_lo = oracle_floors(U, eta, eta0, check.num_classes)
    assert phi_upper - phi_lower <= 1e-3 * phi_upper, f"{name}: oracle partition too coarse"
    # soundness: the reported bound is an upper bound of Φ(U), so the floor is a true floor
    assert result["envelope_bound"] >= phi_lower * (1 - REL), (name, result["envelope_bound"], phi_lower)
    assert result["floor"] <= floor_hi + 1e-12, (name, result["floor"], floor_hi)
    # tightness: the package's upper sum on `pieces` pieces
    slack = _bracket_tol(zeta, eta, eta0, pieces)
    assert result["envelope_bound"] <= phi_upper + slack * LOG2 + 1e-12, (name, result["envelope_bound"], phi_upper)
    assert result["floor"] >= floor_lo - slack - 1e-12, (name, result["floor"], floor_lo, slack)
    # Theorem 0 on the bound, clipped; below the margin loss floor (§7); Lemma 2: Σ μ f_K(δ) ≤ Φ(U)
    assert math.isclose(result["floor"], floor_of(result["envelope_bound"]), rel_tol=0, abs_tol=1e-12)
    assert 0.0 <= result["floor"] <= theorem0_floor(check.loss_bounds[1]) + 1e-12
    assert check.loss_bounds[1] <= phi_upper * (1 + REL)
    return floor_lo, floor_hi


def _envelope_above_F(U, check: OracleCheck, eta: float, D: float) -> None:
    """``U(λ) ≥ F(−η + λ)`` at every jump ``λ_k = δ_k + η`` of ``F`` in ``(0, D]`` (where ``F`` is largest on its step)."""
    lams = sorted({d + eta for m, d in zip(check.mu, check.margins) if m > 0 and 0 < d + eta <= D})
    assert lams
    for lam, u in zip(lams, U(np.array(lams)).tolist()):
        assert u >= float(check.cdf(Fraction(lam) - Fraction(eta))) - 1e-12, (lam, u)


def _grid_parameters(check: OracleCheck, grid: dict) -> tuple[list[float], list[float]]:
    """§7: the ``η`` and ``η0`` candidates: ``η = −min δ + f s`` with ``s = median δ − min δ``, and ``η0`` the smallest
    margin with ``F(η0) ≥ ζ`` for the grid's ``ζ`` (only ``η0 > min δ``)."""
    lowest = check.minimum
    scale = check.quantile(0.5) - lowest
    assert scale > 0, "the fixtures have a spread of margins"
    etas = [f * scale - lowest for f in grid["tau_fractions"]]
    eta0s = sorted(e for e in {check.quantile(z) for z in grid["zetas"]} if e > lowest)
    return etas, eta0s


def _close_to_one_of(value: float, candidates: list[float], rel: float = 1e-9) -> bool:
    return any(math.isclose(value, c, rel_tol=rel, abs_tol=rel) for c in candidates)


def _numpy_condition_a(check: OracleCheck, eta: float, gamma: float, lam0: float) -> float:
    """``C_A`` by brute force in float64 (N × N comparisons), for ranking the grid's candidates."""
    keep = [k for k, m in enumerate(check.mu) if m > 0]
    lam = np.array([check.margins[k] + eta for k in keep])
    mu = np.array([float(check.mu[k]) for k in keep])
    if (lam <= 0).any():
        return math.inf
    inside = lam <= lam0
    if not inside.any():
        return 0.0
    F = (mu[None, :] * (lam[None, :] <= lam[inside][:, None])).sum(axis=1)
    return float((F / lam[inside] ** gamma).max())


def check_theorem_a(actual: dict, check: OracleCheck, grid: dict | None = None, best: bool = True) -> None:
    """The Theorem A metrics against the oracles: the parameters lie on the §7 grid, ``ζ``, ``C_A`` exact, the floor
    bracketed; with ``best``, no candidate of the grid has a provably better floor."""
    grid = {**DEFAULT_GRID, **(grid or {})}
    a = {key.split("/")[-1]: float(v) for key, v in canonical(actual).items() if key.startswith("theorem_a/")}
    eta, eta0, gamma, lam0 = a["eta"], a["eta0"], a["gamma"], a["lam0"]
    etas, eta0s = _grid_parameters(check, grid)
    assert _close_to_one_of(eta, etas), ("η not on the grid", eta, etas)
    assert eta0 in eta0s, ("η0 not on the grid", eta0, eta0s)
    assert gamma in grid["gammas"]
    assert lam0 == eta + eta0, "λ0 = D"
    assert check.minimum >= -eta, "B_η must be empty"
    zeta = check.cdf(eta0)
    assert math.isclose(a["zeta"], float(zeta), rel_tol=REL), (a["zeta"], float(zeta))
    constant = exact_condition_a(check.margins, eta, gamma, lam0, _weights(check))
    assert math.isclose(a["condition_a_constant"], as_float(constant), rel_tol=1e-13), (a, constant)
    U = envelope_u_a(as_float(constant), gamma, lam0, float(zeta))
    _envelope_above_F(U, check, eta, lam0)
    _check_floor(a, U, check, float(zeta), grid["partition_size"], "theorem_a")
    if not best:
        return
    # §7: the best candidate of the grid. The package ranks with upper sums on `search_partition_size` pieces and
    # recomputes the winner on `partition_size`: for every candidate c, Φ(winner) ≤ its ranking sum ≤ c's ranking sum
    # ≤ Φ(U_c) + ζ_c D_c/M_search, and the reported floor is within ζ D/(M log 2) of the winner's true floor. So the
    # reported floor ≥ c's provable floor (oracle upper sum) minus both slacks.
    winner_slack = _bracket_tol(float(zeta), eta, eta0, grid["partition_size"])
    for eta_c in etas:
        for eta0_c in eta0s:
            zeta_c = float(check.cdf(eta0_c))
            for gamma_c in grid["gammas"]:
                lam0_c = eta_c + eta0_c
                U_c = envelope_u_a(_numpy_condition_a(check, eta_c, gamma_c, lam0_c), gamma_c, lam0_c, zeta_c)
                _, upper = riemann_phi(U_c, eta_c, eta0_c, check.num_classes, pieces=1 << 14)
                provable = floor_of(upper * (1 + 1e-9))
                slack = _bracket_tol(zeta_c, eta_c, eta0_c, grid["search_partition_size"]) + winner_slack
                assert a["floor"] >= provable - slack - 1e-12, ("a better candidate", eta_c, eta0_c, gamma_c)


def check_theorem_b(actual: dict, check: OracleCheck, grid: dict | None = None, require_kappa: bool = True) -> None:
    """The Theorem B metrics against the oracles: the §7 parameters, ``ζ`` exact, ``κ_lo ≤ κ_B ≤ κ_hi`` with the exact
    ``κ_B`` (windows of at most `MAX_LATTICE_VALUES` distinct margins), the floor bracketed."""
    grid = {**DEFAULT_GRID, **(grid or {})}
    b = {key.split("/")[-1]: float(v) for key, v in canonical(actual).items() if key.startswith("theorem_b/")}
    eta, eta0, h, m_min = b["eta"], b["eta0"], b["min_width"], b["min_cluster_mass"]
    dilation = b.get("dilation", grid["dilation"])  # a constant: the check may not carry it
    etas, eta0s = _grid_parameters(check, grid)
    assert _close_to_one_of(eta, etas), ("η not on the grid", eta, etas)
    assert eta0 in eta0s, ("η0 not on the grid", eta0, eta0s)
    assert check.minimum >= -eta, "B_η must be empty"
    D = eta + eta0
    zeta = check.cdf(eta0)
    assert math.isclose(b["zeta"], float(zeta), rel_tol=REL)
    assert dilation == grid["dilation"]
    assert math.isclose(b["max_mass"], float(zeta), rel_tol=REL), "m = ζ"
    assert _close_to_one_of(m_min, [f * float(zeta) for f in grid["cluster_mass_fractions"]], REL), "m_min = f ζ"
    assert _close_to_one_of(h, [f * (eta0 - check.minimum) for f in grid["width_fractions"]], REL), "h = f (η0 − min δ)"
    kappa_lo, kappa_hi = b["kappa_lower"], b["kappa_upper"]
    assert 1.0 <= kappa_lo <= kappa_hi
    window = {d for m, d in zip(check.mu, check.margins) if m > 0 and d <= eta0}
    if len(window) <= MAX_LATTICE_VALUES:
        cap = max(Fraction(b["max_mass"]), zeta)  # the exact ζ if the float one is 1 ulp low
        kappa_b, where = lattice_kappa_b(check.margins, dilation, cap, h, m_min, eta0, _weights(check))
        assert kappa_lo <= kappa_b * (1 + 1e-12), (kappa_lo, kappa_b, where)
        assert kappa_b <= kappa_hi * (1 + 1e-12), (kappa_b, kappa_hi, where)
    else:
        assert not require_kappa, f"{len(window)} distinct margins in the window: too many for the exact κ_B"
    U = envelope_u_b(kappa_lo, dilation, float(zeta), m_min, h, D)
    _envelope_above_F(U, check, eta, D)
    _check_floor(b, U, check, float(zeta), grid["partition_size"], "theorem_b")


def _weights(check: OracleCheck) -> list[float] | None:
    """Weights for the exact_oracles functions, which normalise them again: ``None`` for uniform ones, else integers
    proportional to ``μ`` (exact as floats, so the oracles see exactly ``μ``; e.g. ``lcm(counts)/count`` for
    balanced weights)."""
    if all(m == check.mu[0] for m in check.mu):
        return None
    scale = math.lcm(*(m.denominator for m in check.mu))
    assert scale < 2**50, "use integer or balanced weights in these tests: the exact κ_B needs small denominators"
    return [float(m * scale) for m in check.mu]
