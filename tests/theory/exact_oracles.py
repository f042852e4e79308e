"""Exact-rational oracles for ties, and literal re-computations of the Theorem A/B floors.

Written from ``docs/theory.md`` alone; nothing here imports ``lightning_stability``.
Complements ``tests/theory/oracles.py``:

* ``exact_accuracy`` and ``exact_condition_a`` decide every comparison (``δ > 0``, ``λ_k ≤ λ0``,
  ``λ_j ≤ λ_k``) in exact rationals, with ``λ_k = δ_k + η`` summed exactly; on dyadic inputs (the
  cases the tie tests use) this coincides with the float64 sums the spec computes.
* ``envelope_u_a`` / ``envelope_u_b`` are §5 / §6 literally, ``riemann_phi`` brackets ``Φ(U)`` (§4)
  between a lower and an upper Riemann sum, and ``oracle_floors`` turns that into an interval for
  the true floor ``1 − Φ(U)/log 2``.
* ``lattice_kappa_b`` is the exact ``κ_B`` of §6 by enumerating the arrangement of critical
  lines in scaled int64 arithmetic (vectorised, so a window of ~60 values takes about a second);
  it is checked against the object-arithmetic ``oracles.brute_kappa`` in ``test_exact_oracles.py``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath as mp
import numpy as np

from tests.theory.oracles import _denominator_lcm, as_list

LOG2 = math.log(2.0)


# ---------------------------------------------------------------------------
# weights and masses, exactly
# ---------------------------------------------------------------------------


def rational_weights(weights, n):
    """Normalised weights as Fractions of the float64 inputs (``None`` -> 1/n)."""
    if weights is None:
        return [Fraction(1, n)] * n
    raw = [Fraction(v) for v in as_list(weights)]
    total = sum(raw, Fraction(0))
    assert total > 0
    return [v / total for v in raw]


def exact_accuracy(margins, weights=None):
    """§1: ``A = μ(G_0) = μ({k : δ_k > 0})``; a tie ``δ_k = 0`` (also ``-0.0``) is an error."""
    d = as_list(margins)
    mu = rational_weights(weights, len(d))
    return sum((m for m, x in zip(mu, d) if x > 0), Fraction(0))


def exact_cdf(margins, x, weights=None):
    """``F(x) = μ({k : δ_k ≤ x})`` with ``x`` a float or a Fraction, exactly."""
    d = as_list(margins)
    mu = rational_weights(weights, len(d))
    x = Fraction(x)
    return sum((m for m, v in zip(mu, d) if Fraction(v) <= x), Fraction(0))


# ---------------------------------------------------------------------------
# §5 Condition A, exactly
# ---------------------------------------------------------------------------


def _ratio(mass: Fraction, lam: Fraction, gamma):
    """``mass / lam^gamma``: a Fraction for integer gamma, else a 60-digit mpf."""
    g = Fraction(gamma)
    if g.denominator == 1:
        return mass / lam ** int(g)
    with mp.workdps(60):
        return (
            mp.mpf(mass.numerator)
            / mass.denominator
            / mp.power(mp.mpf(lam.numerator) / lam.denominator, mp.mpf(g.numerator) / g.denominator)
        )


def exact_condition_a(margins, eta, gamma, lam0, weights=None):
    """``C_A = sup_{0<λ≤λ0} F(−η+λ)/λ^γ`` (§5), every comparison exact.

    ``F(−η + λ) = μ{j : λ_j ≤ λ}`` is a right-continuous step function jumping at the ``λ_k``, and
    ``λ^γ`` increases, so on each step the supremum is its left end: the maximum over the distinct
    ``λ_k ∈ (0, λ0]`` (every sample sharing that value counted). ``inf`` if a positive-weight
    ``λ_k ≤ 0`` (``B_η ≠ ∅`` or a sample exactly at ``−η``); ``0`` if no ``λ_k`` lies in ``(0, λ0]``.
    Returns a Fraction (integer ``γ``), an mpf, ``0`` or ``math.inf``.
    """
    d = as_list(margins)
    mu = rational_weights(weights, len(d))
    eta = Fraction(float(eta))
    lam0 = Fraction(float(lam0))
    lam = [Fraction(x) + eta for x, m in zip(d, mu) if m > 0]
    mass = [m for m in mu if m > 0]
    if any(v <= 0 for v in lam):
        return math.inf
    best = Fraction(0)
    for jump in sorted(set(v for v in lam if v <= lam0)):
        F = sum((m for v, m in zip(lam, mass) if v <= jump), Fraction(0))
        value = _ratio(F, jump, gamma)
        if isinstance(value, Fraction) and isinstance(best, Fraction):
            larger = value > best
        else:
            with mp.workdps(60):
                larger = _mp(value) > _mp(best)
        if larger:
            best = value
    return best


def _mp(x):
    if isinstance(x, Fraction):
        return mp.mpf(x.numerator) / x.denominator
    return mp.mpf(x)


def as_float(x):
    if isinstance(x, Fraction):
        return x.numerator / x.denominator if max(abs(x.numerator), x.denominator) < 2**53 else float(x)
    return float(x)


# ---------------------------------------------------------------------------
# §2, §4 the loss bound Φ(U) by Riemann sums
# ---------------------------------------------------------------------------


def f_K(d, K):
    """``f_K(d) = log(1 + (K−1) e^{−d})``, stably (numpy)."""
    return np.logaddexp(0.0, math.log(K - 1) - np.asarray(d, dtype=np.float64))


def phi_K(d, K):
    """``φ_K(d) = 1 / (1 + e^d/(K−1))`` (numpy), decreasing in ``d``."""
    x = np.asarray(d, dtype=np.float64) - math.log(K - 1)
    return np.exp(-np.logaddexp(0.0, x))


def riemann_phi(U, eta, eta0, K, pieces=1 << 16):
    """``(lower, upper)`` Riemann sums of ``Φ(U) = f_K(η0) + ∫_0^D U(λ) φ_K(λ − η) dλ``.

    On the uniform partition ``a_i = D i / M``: ``U`` nondecreasing and ``φ_K(· − η)`` decreasing, so on
    every piece ``U(a_i) φ_K(a_{i+1} − η) ≤ U φ_K ≤ U(a_{i+1}) φ_K(a_i − η)``. Hence
    ``lower ≤ Φ(U) ≤ upper`` (up to float64 rounding, ~1e-13 relative here).
    """
    D = float(eta) + float(eta0)
    assert D > 0
    a = D * np.arange(pieces + 1, dtype=np.float64) / pieces
    a[-1] = D
    u = np.asarray(U(a), dtype=np.float64)
    assert u.shape == a.shape
    assert np.all(np.diff(u) >= -1e-15), "the envelope must be nondecreasing"
    ph = phi_K(a - float(eta), K)
    width = np.diff(a)
    base = float(f_K(float(eta0), K))
    lower = base + math.fsum(u[:-1] * ph[1:] * width)
    upper = base + math.fsum(u[1:] * ph[:-1] * width)
    return lower, upper


def floor_of(bound):
    """Theorem 0 floor ``1 − Φ/log 2`` clipped to ``[0, 1]``."""
    return min(1.0, max(0.0, 1.0 - bound / LOG2))


# ---------------------------------------------------------------------------
# §5 / §6 envelopes, literally
# ---------------------------------------------------------------------------


def envelope_u_a(C, gamma, lam0, zeta):
    """§5: ``U_A(λ) = min(ζ, C λ^γ)`` for ``λ ≤ λ0`` and ``ζ`` beyond (``C = inf``: ``ζ`` on ``λ > 0``)."""

    def U(lam):
        lam = np.asarray(lam, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            power = np.where(lam > 0, C * np.power(np.maximum(lam, 0.0), gamma), 0.0)
        return np.where(lam <= lam0, np.minimum(zeta, power), zeta)

    return U


def j_of_lambda(lam, dilation, h, D):
    """§6: ``J(λ) = floor(log_Λ(D / max(λ, h/2)))``, 0 when negative.

    ``floor(log_Λ y)`` is the largest integer ``j`` with ``Λ^j ≤ y``: start from the float logarithm and
    settle the integer by the comparison ``Λ^j max(λ, h/2) ≤ D`` itself (the proof's ``ρ_J ≤ D``).
    """
    x = np.maximum(np.asarray(lam, dtype=np.float64), h / 2)
    j = np.floor(np.log(D / x) / math.log(dilation))
    j = np.maximum(j, 0.0)
    for _ in range(3):
        j = np.where(x * dilation ** (j + 1) <= D, j + 1, j)
        j = np.where((j > 0) & (x * dilation**j > D), j - 1, j)
    return np.where(x > D, 0.0, j)


def envelope_u_b(kappa, dilation, zeta, m_min, h, D):
    """§6 Lemma 3: ``U_B(λ) = min(ζ, max(m_min, ζ κ^{−J(λ)}))``."""

    def U(lam):
        J = j_of_lambda(lam, dilation, h, D)
        if math.isinf(kappa):
            decay = np.where(J == 0, 1.0, 0.0)
        elif kappa <= 0:
            decay = np.ones_like(J)
        else:
            decay = float(kappa) ** (-J)
        return np.minimum(zeta, np.maximum(m_min, zeta * decay))

    return U


def oracle_floors(U, eta, eta0, K, pieces=1 << 16):
    """``(phi_lower, phi_upper, floor_upper_estimate, floor_lower_estimate)``.

    The true floor ``1 − Φ(U)/log 2`` lies in ``[floor_of(phi_upper), floor_of(phi_lower)]``.
    """
    lower, upper = riemann_phi(U, eta, eta0, K, pieces)
    return lower, upper, floor_of(lower), floor_of(upper)


# ---------------------------------------------------------------------------
# §6 Condition B: exact κ_B by the arrangement, in scaled integers
# ---------------------------------------------------------------------------


def lattice_kappa_b(
    values,
    dilation,
    max_mass,
    min_width,
    min_cluster_mass=0.0,
    window_end=math.inf,
    weights=None,
):
    """Exact ``κ_B`` (§6): inf of ``μ(ΛI)/μ(I)`` over ``I = [c − r, c + r]`` with ``r ≥ h/2``,
    ``c + Λr ≤ w``, ``μ(I) ≥ m_min``, ``μ(I) > 0``, ``μ(ΛI) ≤ m``. Returns ``(κ_B, (c, r))`` (Fractions;
    ``(inf, None)`` when no interval is admissible).

    Admissibility and the ratio are constant on every face of the arrangement of the lines
    ``c ± r = v``, ``c ± Λr = v``, ``c + Λr = w``, ``r = h/2``; a face is met by a radius among the
    vertices' radii ``h/2``, ``|v − v'|/{2, 2Λ, Λ+1, Λ−1}``, ``|w − v|/{Λ−1, Λ+1, 2Λ}``, their midpoints or
    one beyond, and, at that radius, by a centre among ``v ± r``, ``v ± Λr``, ``w − Λr``, their
    midpoints or one beyond either end. Values above ``w`` never lie in an admissible ``ΛI`` and are
    dropped (their weight still counts in the normalisation). Everything is scaled to int64.

    ``max_mass`` may be a Fraction (e.g. the exact ``ζ``); floats are taken at their exact value.
    """
    V_all = [Fraction(v) for v in as_list(values)]
    n = len(V_all)
    mu = rational_weights(weights, n)
    T = _denominator_lcm(mu)
    counts_all = [int(m * T) for m in mu]
    Lam = Fraction(float(dilation))
    half_width = Fraction(float(min_width)) / 2
    W = None if math.isinf(window_end) else Fraction(float(window_end))
    cap = max_mass if isinstance(max_mass, Fraction) else Fraction(float(max_mass))
    need_I = max(1, math.ceil(Fraction(float(min_cluster_mass)) * T))
    cap_L = math.floor(cap * T)

    keep = [k for k in range(n) if counts_all[k] > 0 and (W is None or V_all[k] <= W)]
    if not keep:
        return math.inf, None
    V = sorted(set(V_all[k] for k in keep))
    count_at = {v: 0 for v in V}
    for k in keep:
        count_at[V_all[k]] += counts_all[k]

    radii = {half_width}
    for c in (Fraction(2), 2 * Lam, Lam + 1, Lam - 1):
        for i in range(len(V)):
            for j in range(i + 1, len(V)):
                radii.add((V[j] - V[i]) / c)
    if W is not None:
        for c in (Lam - 1, Lam + 1, 2 * Lam):
            for v in V:
                if W != v:
                    radii.add(abs(W - v) / c)
    critical = sorted(r for r in radii if r >= half_width)
    radii = critical + [(a + b) / 2 for a, b in zip(critical, critical[1:])] + [2 * critical[-1] + 1]

    scale = 2 * _denominator_lcm(V + radii + [Lam * r for r in radii] + ([W] if W is not None else []))
    top = max(abs(x) for x in V + radii + [Lam * r for r in radii] + ([W] if W is not None else []))
    assert top * scale * 4 < 2**62, "lattice too fine for int64; use oracles.brute_kappa"
    Vi = np.array([int(v * scale) for v in V], dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum([count_at[v] for v in V])]).astype(np.int64)
    R = np.array([int(r * scale) for r in radii], dtype=np.int64)
    LR = np.array([int(Lam * r * scale) for r in radii], dtype=np.int64)

    points = [Vi[None, :] - R[:, None], Vi[None, :] + R[:, None], Vi[None, :] - LR[:, None], Vi[None, :] + LR[:, None]]
    if W is not None:
        points.append((int(W * scale) - LR)[:, None])
    bps = np.sort(np.concatenate(points, axis=1), axis=1)
    mids = (bps[:, 1:] + bps[:, :-1]) // 2
    centres = np.concatenate([bps, mids, bps[:, :1] - 2, bps[:, -1:] + 2], axis=1)
    Rc = R[:, None]
    LRc = LR[:, None]
    inside_I = (
        cum[np.searchsorted(Vi, centres + Rc, side="right")] - cum[np.searchsorted(Vi, centres - Rc, side="left")]
    )
    inside_L = (
        cum[np.searchsorted(Vi, centres + LRc, side="right")] - cum[np.searchsorted(Vi, centres - LRc, side="left")]
    )
    ok = (inside_I >= need_I) & (inside_L <= cap_L)
    if W is not None:
        ok &= centres + LRc <= int(W * scale)
    if not ok.any():
        return math.inf, None
    ratio = np.where(ok, inside_L / np.where(ok, inside_I, 1), np.inf)
    flat = int(np.argmin(ratio))
    row, col = divmod(flat, ratio.shape[1])
    best = Fraction(int(inside_L[row, col]), int(inside_I[row, col]))
    # the float argmin may differ from the exact one only between ratios equal as floats: settle exactly
    close_rows, close_cols = np.nonzero(ok & (ratio <= ratio[row, col] * (1 + 1e-12)))
    for r_, c_ in zip(close_rows.tolist(), close_cols.tolist()):
        candidate = Fraction(int(inside_L[r_, c_]), int(inside_I[r_, c_]))
        if candidate < best:
            best, row, col = candidate, r_, c_
    return float(best), (Fraction(int(centres[row, col]), scale), radii[row])
