"""Slow, obvious brute-force oracles for the mathematics of ``docs/theory.md``.

Nothing here imports ``lightning_stability``: every quantity is recomputed from
its definition with plain Python loops, exact rationals (``fractions``) or
high-precision floats (``mpmath``).  The section numbers refer to
``docs/theory.md``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath as mp
import numpy as np
import torch

mp.mp.dps = 50

LOG2 = math.log(2.0)


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def as_list(x):
    """Tensor / array / sequence -> list of Python floats."""
    if isinstance(x, torch.Tensor):
        return [float(v) for v in x.detach().cpu().reshape(-1).tolist()]
    return [float(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]


def exact_weights(weights, n):
    """Normalised weights as exact Fractions (``None`` -> uniform 1/n)."""
    if weights is None:
        return [Fraction(1, n)] * n
    w = [Fraction(v) for v in as_list(weights)]
    total = sum(w)
    return [v / total for v in w]


def close(a, b, rel=1e-12, abs_=1e-12):
    """math.isclose that also accepts equal infinities / both NaN."""
    a = float(a)
    b = float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


# ---------------------------------------------------------------------------
# §1-§2: margins, cross entropy, g, f_K, phi_K
# ---------------------------------------------------------------------------


def naive_margins(logits, targets):
    """delta_k = z_{k,y} - max_{j != y} z_{k,j}, via a Python loop (correctly rounded)."""
    z = logits.detach().to(torch.float64).tolist()
    y = targets.tolist()
    out = []
    for row, t in zip(z, y):
        best_other = None
        for j, v in enumerate(row):
            if j == t:
                continue
            if best_other is None or v > best_other:
                best_other = v
        out.append(float(mp.mpf(row[t]) - mp.mpf(best_other)))
    return out


def naive_cross_entropy(logits, targets):
    """l_k = log sum_j exp(z_kj) - z_ky in 50-digit arithmetic."""
    z = logits.detach().to(torch.float64).tolist()
    y = targets.tolist()
    out = []
    for row, t in zip(z, y):
        s = mp.fsum(mp.exp(mp.mpf(v) - mp.mpf(row[t])) for v in row)
        out.append(float(mp.log(s)))
    return out


def g_mp(d):
    return mp.log(1 + mp.exp(-mp.mpf(d)))


def fK_mp(d, K):
    return mp.log(1 + (K - 1) * mp.exp(-mp.mpf(d)))


def phiK_mp(d, K):
    return 1 / (1 + mp.exp(mp.mpf(d)) / (K - 1))


def g(d):
    return float(g_mp(d))


def fK(d, K):
    return float(fK_mp(d, K))


def phiK(d, K):
    return float(phiK_mp(d, K))


def naive_loss_bounds(margins, K, weights=None):
    """(sum mu g(delta), sum mu f_K(delta)) in 50-digit arithmetic (§2)."""
    d = as_list(margins)
    mu = exact_weights(weights, len(d))
    lo = mp.fsum(mp.mpf(m.numerator) / m.denominator * g_mp(x) for m, x in zip(mu, d))
    hi = mp.fsum(mp.mpf(m.numerator) / m.denominator * fK_mp(x, K) for m, x in zip(mu, d))
    return float(lo), float(hi)


def naive_loss_floor(loss, eta=0.0):
    """Theorem 0 (§3): 1 - L / g(eta), clipped to [0, 1]."""
    v = 1.0 - float(mp.mpf(loss) / g_mp(eta))
    return min(1.0, max(0.0, v))


# ---------------------------------------------------------------------------
# §1 masses
# ---------------------------------------------------------------------------


def mass_where(margins, pred, weights=None):
    """mu({k : pred(delta_k)}) exactly (Fractions), returned as float."""
    d = as_list(margins)
    mu = exact_weights(weights, len(d))
    return float(sum((m for m, x in zip(mu, d) if pred(x)), Fraction(0)))


def naive_good_mass(margins, eta, weights=None):
    return mass_where(margins, lambda x: x > eta, weights)


def naive_bad_mass(margins, eta, weights=None):
    return mass_where(margins, lambda x: x < -eta, weights)


def naive_cdf(margins, x, weights=None):
    return mass_where(margins, lambda v: v <= x, weights)


def naive_flip_masses(prev, cur, weights=None):
    """§8: forgotten = mu{prev > 0 >= cur}, learned = mu{prev <= 0 < cur}."""
    p = as_list(prev)
    c = as_list(cur)
    mu = exact_weights(weights, len(p))
    forgotten = sum((m for m, a, b in zip(mu, p, c) if a > 0 >= b), Fraction(0))
    learned = sum((m for m, a, b in zip(mu, p, c) if a <= 0 < b), Fraction(0))
    return float(forgotten), float(learned)


def naive_instability_event(prev_loss, prev_acc, loss, acc, tol=0.0):
    return (loss < prev_loss) and (acc < prev_acc - tol)


# ---------------------------------------------------------------------------
# §5 Condition A
# ---------------------------------------------------------------------------


def brute_condition_a(margins, eta, gamma, lam0, weights=None):
    """C_A by an O(N^2) loop: max over positive-weight k with lambda_k <= lam0 of
    F(-eta + lambda_k) / lambda_k^gamma, F counted directly as mu{j : lambda_j <= lambda_k}.
    inf if a positive-weight lambda_k <= 0.

    lambda_k = delta_k + eta is taken as the float64 sum (as the spec's "put lambda_k =
    delta_k + eta" computes it); float rounding is monotone, so this can only merge
    near-ties (F larger: conservative) and it keeps lambda_k <= lam0 consistent with a
    float lam0 = eta + eta0 = D when eta0 is itself a margin.  All comparisons and F are
    then exact (Fractions of the floats)."""
    d = as_list(margins)
    mu = exact_weights(weights, len(d))
    lam = [Fraction(x + float(eta)) for x in d]
    pos = [k for k in range(len(d)) if mu[k] > 0]
    if any(lam[k] <= 0 for k in pos):
        return math.inf
    best = mp.mpf(0)
    l0 = Fraction(float(lam0))
    for k in pos:
        if lam[k] > l0:
            continue
        F = sum((mu[j] for j in pos if lam[j] <= lam[k]), Fraction(0))
        val = mp.mpf(F.numerator) / F.denominator / mp.power(mp.mpf(lam[k].numerator) / lam[k].denominator, gamma)
        best = max(best, val)
    return float(best)


def grid_sup_condition_a(margins, eta, gamma, lam0, weights=None, n_grid=3000):
    """sup over a dense grid of lambda in (0, lam0] of F(-eta+lambda)/lambda^gamma
    (plus the grid points lambda_k themselves and just to their right)."""
    d = np.array(as_list(margins))
    mu = np.array([float(m) for m in exact_weights(weights, len(d))])
    lam_k = d + eta
    grid = list(np.linspace(lam0 / n_grid, lam0, n_grid))
    for lk in lam_k:
        if 0 < lk <= lam0:
            grid.append(lk)
            grid.append(min(lam0, lk * (1 + 1e-9)))
    best = 0.0
    for lam in grid:
        F = mu[(mu > 0) & (lam_k <= lam)].sum()
        best = max(best, F / lam**gamma)
    return best


# ---------------------------------------------------------------------------
# §4 the envelope bound Phi(U), exactly
# ---------------------------------------------------------------------------


def phi_step_exact(pieces, eta, eta0, K):
    """Phi(U) = f_K(eta0) + int_0^D U(l) phi_K(l - eta) dl for a piecewise-constant U
    given as [(a, b, u), ...] covering [0, D]:  int_a^b phi_K(l-eta) dl
    = f_K(a-eta) - f_K(b-eta) since phi_K = -f_K'."""
    total = fK_mp(eta0, K)
    for a, b, u in pieces:
        total += mp.mpf(u) * (fK_mp(mp.mpf(a) - eta, K) - fK_mp(mp.mpf(b) - eta, K))
    return float(total)


def phi_trivial_closed_form(zeta, eta, eta0, K):
    """U == zeta: (1 - zeta) f_K(eta0) + zeta f_K(-eta)."""
    return float((1 - mp.mpf(zeta)) * fK_mp(eta0, K) + mp.mpf(zeta) * fK_mp(-eta, K))


def u_a_scalar(lam, C, gamma, lam0, zeta):
    """§5: U_A(l) = min(zeta, C l^gamma) for l <= lam0, zeta beyond."""
    if lam > lam0:
        return zeta
    return min(zeta, C * lam**gamma)


def phi_u_a_exact(C, gamma, lam0, zeta, eta, eta0, K):
    """Phi(U_A) with mpmath quadrature on the smooth part and closed forms elsewhere."""
    D = mp.mpf(eta) + mp.mpf(eta0)
    lam0 = mp.mpf(lam0)
    zeta = mp.mpf(zeta)
    total = fK_mp(eta0, K)
    if C == 0:
        cross = lam0
    else:
        cross = min(lam0, (zeta / mp.mpf(C)) ** (1 / mp.mpf(gamma)))
    if C > 0 and cross > 0:
        total += mp.quad(lambda l: mp.mpf(C) * l ** mp.mpf(gamma) * phiK_mp(l - eta, K), [0, cross / 2, cross])
    total += zeta * (fK_mp(cross - eta, K) - fK_mp(D - eta, K))
    return float(total)


def robust_J(lam, dilation, h, D):
    """§6: J(l) = floor(log_Lambda(D / max(l, h/2))), 0 when negative, computed as
    the largest j >= 0 with Lambda^j * max(l, h/2) <= D (the proof's requirement)."""
    x = max(lam, h / 2)
    if x > D:
        return 0
    j = 0
    while x * dilation ** (j + 1) <= D:
        j += 1
    return j


def u_b_scalar(lam, kappa, dilation, zeta, m_min, h, D):
    """§6 Lemma 3: U_B(l) = min(zeta, max(m_min, zeta * kappa^-J(l)))."""
    J = robust_J(lam, dilation, h, D)
    kpow = 1.0 if J == 0 else (0.0 if math.isinf(kappa) else kappa ** (-J))
    return min(zeta, max(m_min, zeta * kpow))


def u_b_vec(lam, kappa, dilation, zeta, m_min, h, D):
    """Vectorised u_b_scalar (numpy), J fixed up to the exact 'largest j' definition."""
    lam = np.asarray(lam, dtype=np.float64)
    x = np.maximum(lam, h / 2)
    with np.errstate(divide="ignore"):
        J = np.floor(np.log(D / x) / math.log(dilation))
    J = np.maximum(J, 0)
    J = np.where(x * dilation ** (J + 1) <= D, J + 1, J)
    J = np.where((J > 0) & (x * dilation**J > D), J - 1, J)
    J = np.where(x > D, 0, J)
    if math.isinf(kappa):
        kpow = np.where(J == 0, 1.0, 0.0)
    else:
        kpow = kappa ** (-J)
    return np.minimum(zeta, np.maximum(m_min, zeta * kpow))


def u_b_breakpoints(dilation, h, D):
    """Points of [0, D] where U_B may jump: D / Lambda^j above h/2, and h/2."""
    pts = set()
    j = 1
    while D / dilation**j > h / 2:
        pts.add(D / dilation**j)
        j += 1
    if 0 < h / 2 < D:
        pts.add(h / 2)
    return sorted(pts)


def phi_u_b_exact(kappa, dilation, zeta, m_min, h, eta, eta0, K):
    D = eta + eta0
    pts = [0.0] + [p for p in u_b_breakpoints(dilation, h, D) if 0 < p < D] + [D]
    pieces = []
    for a, b in zip(pts, pts[1:]):
        u = u_b_scalar(0.5 * (a + b), kappa, dilation, zeta, m_min, h, D)
        pieces.append((a, b, u))
    return phi_step_exact(pieces, eta, eta0, K)


def empirical_F_pieces(margins, eta, eta0, weights=None):
    """Pieces of lambda -> F(-eta + lambda) on [0, D] (a right-continuous step function)."""
    d = as_list(margins)
    mu = exact_weights(weights, len(d))
    D = eta + eta0
    lam = sorted({x + eta for x, m in zip(d, mu) if m > 0 and 0 < x + eta < D})
    pts = [0.0] + lam + [D]
    pieces = []
    for a, b in zip(pts, pts[1:]):
        mid = 0.5 * (a + b)
        F = float(sum((m for m, x in zip(mu, d) if m > 0 and x + eta <= mid), Fraction(0)))
        pieces.append((a, b, F))
    return pieces


def empirical_F_of_lambda(margins, eta, lams, weights=None):
    """F(-eta + lambda) = mu{k : lambda_k <= lambda}, lambda_k = delta_k + eta in float64,
    on an array of lambdas (numpy)."""
    d = np.array(as_list(margins))
    mu = np.array([float(m) for m in exact_weights(weights, len(d))])
    lam_k = d + float(eta)
    lams = np.asarray(lams, dtype=np.float64)
    return np.array([mu[lam_k <= l].sum() for l in lams])


def upper_sum_uniform(U, eta, eta0, K, M):
    """My own rigorous upper sum on a uniform partition (used only to pick test ranges)."""
    D = eta + eta0
    a = np.linspace(0.0, D, M + 1)
    u = np.array([U(float(x)) for x in a[1:]])
    ph = 1.0 / (1.0 + np.exp(a[:-1] - eta) / (K - 1))
    return fK(eta0, K) + float(np.sum(u * ph * np.diff(a)))


# ---------------------------------------------------------------------------
# §6 Condition B: exact kappa_B by exhaustive enumeration of the arrangement
# ---------------------------------------------------------------------------


def _denominator_lcm(fracs):
    out = 1
    for f in fracs:
        out = math.lcm(out, Fraction(f).denominator)
    return out


def brute_kappa(
    values,
    dilation,
    max_mass,
    min_width,
    min_cluster_mass=0.0,
    window_end=math.inf,
    weights=None,
):
    """Exact kappa_B (§6) = inf of mu(Lambda I)/mu(I) over admissible closed intervals
    I = [c - r, c + r]:  r >= h/2,  c + Lambda r <= w,  mu(I) >= m_min,  mu(I) > 0,
    mu(Lambda I) <= m.  Returns (kappa, (c, r) as Fractions or None).

    In the (c, r) half plane admissibility and the ratio are constant on every face
    (vertex, edge, open cell) of the arrangement of the lines c +- r = v_k,
    c +- Lambda r = v_k, c + Lambda r = w, r = h/2.  Every face is met by
      * a radius r among the critical radii (r-coordinates of vertices:
        {h/2} U {|v_i - v_j| / c : c in {2, 2L, L+1, L-1}} U {|w - v_j| / c : c in
        {L-1, L+1, 2L}}), the midpoints of consecutive critical radii, or one radius
        beyond the largest, and
      * for that radius, a centre among the breakpoints v_k +- r, v_k +- L r, w - L r,
        the midpoints of consecutive breakpoints, or one beyond each end.
    All arithmetic is exact (everything is scaled to a common integer denominator),
    so closed-interval boundary cases are decided exactly.
    """
    V = [Fraction(v) for v in as_list(values)]
    n = len(V)
    mu = exact_weights(weights, n)
    Lam = Fraction(float(dilation))
    h2 = Fraction(float(min_width)) / 2
    W = None if math.isinf(window_end) else Fraction(float(window_end))
    # max_mass may be given as an exact Fraction (e.g. the exact zeta)
    m_cap = max_mass if isinstance(max_mass, Fraction) else Fraction(float(max_mass))
    m_min = Fraction(float(min_cluster_mass))

    crit = {h2}
    divisors = [Fraction(2), 2 * Lam, Lam + 1, Lam - 1]
    for i in range(n):
        for j in range(i + 1, n):
            dv = abs(V[i] - V[j])
            if dv:
                for c in divisors:
                    crit.add(dv / c)
    if W is not None:
        for v in V:
            dv = abs(W - v)
            if dv:
                for c in (Lam - 1, Lam + 1, 2 * Lam):
                    crit.add(dv / c)
    crit = sorted(r for r in crit if r >= h2)
    radii = list(crit)
    radii += [(a + b) / 2 for a, b in zip(crit, crit[1:])]
    radii.append(2 * crit[-1] + 1)

    # common integer scale: every centre / endpoint below is an integer multiple of 1/S
    fr = list(V) + radii + [Lam * r for r in radii]
    if W is not None:
        fr.append(W)
    S = 2 * _denominator_lcm(fr)
    Vi = np.array([int(v * S) for v in V], dtype=object)
    Wi = None if W is None else int(W * S)
    T = _denominator_lcm(mu)
    nk = np.array([int(m * T) for m in mu], dtype=object)
    need_I = max(1, math.ceil(m_min * T))  # mu(I) >= m_min and mu(I) > 0
    cap_L = math.floor(m_cap * T)  # mu(Lambda I) <= m

    best = None
    best_cr = None
    for r in radii:
        R = int(r * S)
        LR = int(Lam * r * S)
        bps = set()
        for v in Vi:
            bps.update((v - R, v + R, v - LR, v + LR))
        if Wi is not None:
            bps.add(Wi - LR)
        bps = sorted(bps)
        cents = list(bps) + [(a + b) // 2 for a, b in zip(bps, bps[1:])]
        cents += [bps[0] - 2, bps[-1] + 2]
        C = np.array(cents, dtype=object)
        if Wi is not None:
            C = C[np.array([c + LR <= Wi for c in C], dtype=bool)]
            if len(C) == 0:
                continue
        Cc = C[:, None]
        inI = ((Cc - R <= Vi[None, :]) & (Vi[None, :] <= Cc + R)).astype(bool)
        inL = ((Cc - LR <= Vi[None, :]) & (Vi[None, :] <= Cc + LR)).astype(bool)
        nI = (inI.astype(object) * nk[None, :]).sum(axis=1)
        nL = (inL.astype(object) * nk[None, :]).sum(axis=1)
        for c, a, b in zip(C, nI, nL):
            if a >= need_I and b <= cap_L:
                ratio = Fraction(int(b), int(a))
                if best is None or ratio < best:
                    best = ratio
                    best_cr = (Fraction(int(c), S), r)
    if best is None:
        return math.inf, None
    return float(best), best_cr


def interval_masses_float(values, weights, centre, radius, dilation):
    """(mu(I), mu(Lambda I), indices in I, positive-weight indices in I), float64 ops."""
    v = np.array(as_list(values))
    mu = np.array([float(m) for m in exact_weights(weights, len(v))])
    c = float(centre)
    r = float(radius)
    lr = float(dilation) * r
    inI = (v >= c - r) & (v <= c + r)
    inL = (v >= c - lr) & (v <= c + lr)
    return (
        float(mu[inI].sum()),
        float(mu[inL].sum()),
        set(np.nonzero(inI)[0].tolist()),
        set(np.nonzero(inI & (mu > 0))[0].tolist()),
    )


def dyadic_weights(rng, n, total=32, allow_zero=True):
    """Random nonnegative integer weights summing to a power of two (so that the
    normalised weights and all their partial sums are exact floats)."""
    while True:
        cuts = np.sort(rng.integers(0, total + 1, size=n - 1))
        w = np.diff(np.concatenate([[0], cuts, [total]])).astype(np.float64)
        if not allow_zero:
            if np.all(w > 0):
                return w
            continue
        if w.sum() > 0:
            return w


def random_logits(rng, n, K, scale):
    """Random float64 logits ``[n, K]`` of the given scale (rounded to integers 30 % of the time, for exact
    ties between classes) and random targets."""
    z = torch.tensor(rng.normal(size=(n, K)) * scale, dtype=torch.float64)
    y = torch.tensor(rng.integers(0, K, size=n), dtype=torch.long)
    if rng.random() < 0.3:  # exact ties between classes
        z = torch.round(z)
    return z, y


def random_weights(rng, n):
    """``None`` (uniform), dyadic weights summing to 64, or random float weights with about 15 % zeros."""
    r = rng.random()
    if r < 0.35:
        return None
    if r < 0.7:
        return torch.tensor(dyadic_weights(rng, n, total=64))
    return torch.tensor(rng.uniform(0.0, 3.0, size=n) * (rng.random(n) < 0.85))
