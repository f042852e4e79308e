"""§4–§7: the Theorem A and B floors that ``certify`` reports, against independent oracles.

From the FREE parameters a report carries (``η``, ``η0``, ``γ``, ``λ0`` for Theorem A; ``η``, ``η0``,
``Λ``, ``h``, ``m_min`` for Theorem B) the oracle recomputes the DERIVED ones exactly (``ζ = F(η0)``,
``C_A``, ``κ_B``), builds ``U_A`` / ``U_B`` literally (THEORY.md §5, §6 Lemma 3) and brackets ``Φ(U)``
(§4) between a lower and an upper Riemann sum on 2^16 pieces. The true floor ``1 − Φ(U)/log 2``
therefore lies in ``[1 − Φ_upper/log 2, 1 − Φ_lower/log 2]``, and we assert

* soundness: ``envelope_bound ≥ Φ_lower`` and ``floor ≤ 1 − Φ_lower/log 2`` (a reported floor above the
  true one would be a false certificate);
* tightness: ``floor ≥ 1 − Φ_upper/log 2 − FLOOR_TOL`` (the package's upper sum is not wastefully loose);
* the reported ``C_A`` equals the exact ``C_A`` at the reported ``(η, γ, λ0)``;
* ``κ_lo ≤ κ_B ≤ κ_hi`` with the exact ``κ_B`` (window of at most ``MAX_BRUTE_WINDOW`` values);
* both envelopes lie above the empirical ``F(−η + ·)`` and ``Σ μ f_K(δ) ≤ Φ(U)`` (Lemma 2).

The margin distributions of ``NONTRIVIAL`` are shaped like a trained classifier's (a wide positive
bulk, a thin transition and a few % of negative margins); for them Condition B is certified
(``κ_lo > 1``) and the Theorem B floor is positive, so the decaying envelope ``U_B`` (not the
trivial ``U ≡ ζ``) is what ``certify`` reports and what is checked.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.exact_oracles import (
    as_float,
    envelope_u_a,
    envelope_u_b,
    exact_cdf,
    exact_condition_a,
    floor_of,
    lattice_kappa_b,
    oracle_floors,
    rational_weights,
)
from tests.theory.oracles import brute_condition_a, naive_loss_bounds, phi_u_a_exact, phi_u_b_exact

FLOOR_TOL = 2e-3
"""Tightness: the package's upper sum uses 4096 pieces (THEORY.md §4: "converges as the partition is
refined"); its floor may sit at most this far below the oracle's floor from the upper Riemann sum."""
PHI_REL = 1e-12  # float64 rounding slack of the soundness comparisons
MAX_BRUTE_WINDOW = 64  # values in (−∞, η0] up to which the exact κ_B is enumerated


def _lambda_points(d, eta, D):
    return sorted({x + eta for x in d.tolist() if 0 < x + eta <= D})


def _check_envelope_dominates_F(U, d, w, eta, D):
    """``U(λ) ≥ F(−η + λ)`` at every jump ``λ_k`` of ``F`` in ``(0, D]`` (where ``F`` is largest on its step)."""
    lams = _lambda_points(d, eta, D)
    assert lams, "certify picks η = −min δ + τ with τ > 0, so λ = min δ + η lies in (0, D]"
    values = U(np.array(lams))
    for lam, u in zip(lams, values.tolist()):
        F = as_float(exact_cdf(d, Fraction(lam) - Fraction(eta), w))
        assert u >= F - 1e-12, (lam, u, F)


def _positive_minimum(d, w):
    if w is None:
        return float(d.min())
    return float(d[w > 0].min())


def check_theorem_a(rep, d, K, w):
    ta = rep.theorem_a
    eta, eta0, gamma, lam0 = ta.eta, ta.eta0, ta.gamma, ta.lam0
    D = eta + eta0
    assert _positive_minimum(d, w) >= -eta, "B_eta must be empty"
    assert D > 0 and 0 < lam0 <= D
    zeta = exact_cdf(d, eta0, w)
    assert ta.zeta == pytest.approx(as_float(zeta), abs=1e-15)
    C = exact_condition_a(d, eta, gamma, lam0, w)
    C_float = as_float(C)
    if C == math.inf:
        assert ta.condition_a_constant == math.inf
    else:
        assert ta.condition_a_constant == pytest.approx(C_float, rel=1e-13, abs=0.0)
        assert brute_condition_a(d, eta, gamma, lam0, w) == pytest.approx(C_float, rel=1e-13, abs=0.0)
    U = envelope_u_a(C_float, gamma, lam0, as_float(zeta))
    _check_envelope_dominates_F(U, d, w, eta, D)
    lower, upper, floor_hi, floor_lo = oracle_floors(U, eta, eta0, K)
    exact = phi_u_a_exact(C_float, gamma, lam0, as_float(zeta), eta, eta0, K)
    assert lower * (1 - PHI_REL) <= exact <= upper * (1 + PHI_REL), (lower, exact, upper)  # oracle self-check
    _check_phi_and_floor(ta, lower, upper, floor_hi, floor_lo, rep, d, K, w)
    return lower, upper


def check_theorem_b(rep, d, K, w, require_brute=False):
    tb = rep.theorem_b
    eta, eta0, Lam, h, m_min = tb.eta, tb.eta0, tb.dilation, tb.min_width, tb.min_cluster_mass
    D = eta + eta0
    assert _positive_minimum(d, w) >= -eta, "B_eta must be empty"
    assert D > 0 and Lam > 1 and h > 0 and 0 <= m_min <= tb.max_mass
    zeta = exact_cdf(d, eta0, w)
    assert tb.zeta == pytest.approx(as_float(zeta), abs=1e-15)
    assert tb.max_mass >= as_float(zeta) * (1 - 1e-12), "Lemma 3 needs the cap m >= zeta"
    kappa_lo, kappa_hi = tb.kappa_lower, tb.kappa_upper
    assert 0 <= kappa_lo <= kappa_hi
    mu = rational_weights(w, len(d))
    window = sum(1 for x, m in zip(d.tolist(), mu) if m > 0 and x <= eta0)
    if window <= MAX_BRUTE_WINDOW:
        cap = max(Fraction(float(tb.max_mass)), zeta)  # the exact zeta if the float one is 1 ulp low
        kappa_b, arg = lattice_kappa_b(d, Lam, cap, h, m_min, eta0, w)
        assert kappa_lo <= kappa_b * (1 + 1e-12), (kappa_lo, kappa_b, arg)
        assert kappa_b <= kappa_hi * (1 + 1e-12), (kappa_b, kappa_hi, arg)
    else:
        assert not require_brute, f"window of {window} values: too large for the exact kappa_B"
    U = envelope_u_b(kappa_lo, Lam, as_float(zeta), m_min, h, D)
    _check_envelope_dominates_F(U, d, w, eta, D)
    lower, upper, floor_hi, floor_lo = oracle_floors(U, eta, eta0, K)
    exact = phi_u_b_exact(kappa_lo, Lam, as_float(zeta), m_min, h, eta, eta0, K)
    assert lower * (1 - PHI_REL) <= exact <= upper * (1 + PHI_REL), (lower, exact, upper)  # oracle self-check
    _check_phi_and_floor(tb, lower, upper, floor_hi, floor_lo, rep, d, K, w)
    return lower, upper


def _check_phi_and_floor(result, lower, upper, floor_hi, floor_lo, rep, d, K, w):
    assert upper - lower <= 1e-3 * upper, "oracle partition too coarse"
    # soundness: the reported bound is an upper bound of Φ(U), so the floor is a true floor
    assert result.envelope_bound >= lower * (1 - PHI_REL), (result.envelope_bound, lower)
    assert result.floor <= floor_hi + 1e-12, (result.floor, floor_hi)
    # tightness
    assert result.envelope_bound <= upper + FLOOR_TOL * math.log(2.0), (result.envelope_bound, upper)
    assert result.floor >= floor_lo - FLOOR_TOL, (result.floor, floor_lo)
    # the floor is the Theorem 0 floor of the reported bound, below the margin loss floor (§7)
    assert result.floor == pytest.approx(floor_of(result.envelope_bound), abs=1e-12)
    assert 0.0 <= result.floor <= rep.margin_loss_floor + 1e-12
    # Lemma 2: Σ μ f_K(δ) ≤ Φ(U) for an envelope above F
    _, loss_upper = naive_loss_bounds(d, K, w)
    assert loss_upper <= upper * (1 + PHI_REL)


# ---------------------------------------------------------------------------
# trained-classifier-shaped margins: Condition B certified, Theorem B floor > 0
# ---------------------------------------------------------------------------


def classifier_margins(n, tail, transition, transition_end, bulk_end):
    """Deterministic quantiles of a piecewise-uniform margin density, rounded down to ℤ/64:
    ``tail`` of the mass on [−1, 0), ``transition`` on [0, transition_end), the rest on
    [transition_end, bulk_end]. Dyadic values make every sum exact (so are ``η``, ``η0``, ``D``)."""
    u = (np.arange(n) + 0.5) / n
    d = np.where(
        u < tail,
        -1 + u / tail,
        np.where(
            u < tail + transition,
            (u - tail) / transition * transition_end,
            transition_end + (u - tail - transition) / (1 - tail - transition) * (bulk_end - transition_end),
        ),
    )
    return torch.tensor(np.floor(d * 64) / 64, dtype=torch.float64)


NONTRIVIAL = {
    # name: (margins, K, weights)
    "K2-N200": (classifier_margins(200, 0.05, 0.15, 2.0, 8.0), 2, None),
    "K3-N200": (classifier_margins(200, 0.05, 0.15, 2.0, 8.0), 3, None),
    "K10-N160": (classifier_margins(160, 0.03, 0.15, 5.0, 15.0), 10, None),
    "K3-N200-weighted": (
        classifier_margins(200, 0.05, 0.15, 2.0, 8.0),
        3,
        torch.tensor([1.0 + (k % 3) for k in range(200)], dtype=torch.float64),
    ),
}


@pytest.mark.parametrize("name", sorted(NONTRIVIAL))
def test_certify_nontrivial_theorem_b_against_oracles(name):
    d, K, w = NONTRIVIAL[name]
    # the shape the test claims: most mass in the positive bulk, a few % negative
    assert 0.02 <= float((d < 0).double().mean()) <= 0.06
    assert float((d >= 2.0).double().mean()) >= 0.8
    rep = theory.certify(d, K, weights=w)
    tb = rep.theorem_b
    assert tb.kappa_lower > 1.0, tb  # Condition B certified: U_B decays below ζ
    assert tb.floor > 0.0, tb  # ... and yields a non-trivial accuracy floor
    assert rep.theorem_a.floor > 0.0
    check_theorem_a(rep, d, K, w)
    lower, upper = check_theorem_b(rep, d, K, w, require_brute=True)
    # U_B with κ_lo > 1 is strictly better than the trivial envelope U ≡ ζ
    trivial = oracle_floors(lambda lam: np.full_like(lam, tb.zeta), tb.eta, tb.eta0, K)
    assert upper < trivial[0]


# ---------------------------------------------------------------------------
# random small cases on a dyadic lattice (ties, zero margins, zero weights)
# ---------------------------------------------------------------------------

SMALL_GRID = dict(zetas=(0.1, 0.3, 0.5), tau_fractions=(1 / 16, 1 / 4), gammas=(0.5, 1.0, 4.0))


@st.composite
def lattice_cases(draw):
    n = draw(st.integers(1, 14))
    d = [x / 16 for x in draw(st.lists(st.integers(-32, 160), min_size=n, max_size=n))]
    if draw(st.booleans()):
        d[draw(st.integers(0, n - 1))] = 0.0
    w = draw(st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    if w is not None and sum(w) == 0:
        w[0] = 1
    K = draw(st.sampled_from([2, 3, 10]))
    return d, w, K, False  # the default grid (slower on small N) runs in the NONTRIVIAL cases and examples


@settings(max_examples=40)
@given(lattice_cases())
@example(([0.0, 1.0, 1.0, 1.0], None, 2, True))  # the λ_k = λ0 tie case of Condition A
@example(([0.0, 0.0, 0.0, 0.0], None, 3, True))  # all margins tied at 0
@example(([-1.0, 0.0, 0.0, 2.0, 2.0, 5.0], [0, 1, 1, 2, 0, 1], 10, False))  # zero weights, ties
@example(([4.0, 4.0, 4.0, 5.0, 6.0, -0.5], [1, 1, 1, 1, 1, 3], 2, True))  # one heavy wrong sample
def test_certify_floors_match_oracles_on_lattice(case):
    d, w, K, default_grid = case
    d = torch.tensor(d, dtype=torch.float64)
    w = None if w is None else torch.tensor([float(x) for x in w], dtype=torch.float64)
    rep = theory.certify(d, K, weights=w, **({} if default_grid else SMALL_GRID))
    check_theorem_a(rep, d, K, w)
    check_theorem_b(rep, d, K, w, require_brute=True)
