"""Condition B: the certified bracket ``κ_lo ≤ κ_B ≤ κ_hi`` and the envelope ``U_B`` (docs/theory.md §6)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .distribution import SortedMargins
from .envelope import Envelope
from .exact_float import _exact_dilations, _rounded_ends
from .exact_float import _exact_dilations_rational as _exact_dilations_rational  # re-export: tests call it here
from .results import ConditionBResult
from .validation import check_finite_number, check_positive, float64

__all__ = [
    "condition_b_constant",
    "condition_b_envelope",
    "condition_b_envelope_values",
]

_OUTWARD = 1.0 - 1e-12
"""``κ_lo`` is multiplied by this, so that float rounding of mass ratios can never lift it above ``κ_B``."""


def _breakpoint_centres(values: Tensor, radius_num: float, radius_den: float, centre_max: float) -> Tensor:
    """Every breakpoint ``v ± r`` of both masses in ``c`` (≤ ``centre_max``) and every midpoint between them."""
    shifts = torch.tensor([-radius_num, -radius_den, radius_den, radius_num], dtype=values.dtype)
    points = (values.unsqueeze(1) + shifts).reshape(-1)
    if math.isfinite(centre_max):
        points = torch.cat([points, points.new_tensor([centre_max])])
    points = torch.unique(points[points <= centre_max])  # sorted
    return torch.cat([points, (points[:-1] + points[1:]) / 2])


def _centre_grids(
    lowest: float, highest: float, radius_num: Tensor, radius_den: Tensor, centre_max: Tensor, spacing: float
) -> Tensor:
    """``[R, G]`` centres on ``spacing·ℤ``, row ``i`` covering every centre whose denominator interval
    ``[c ± radius_den_i]`` can reach the values (``c ≥ lowest − radius_den_i``) up to ``centre_max_i`` (or
    ``highest + radius_num_i`` if smaller); rows are padded to a common length on the right, where centres
    are infeasible (no mass, or beyond ``centre_max``)."""
    start = torch.floor((lowest - radius_den) / spacing) - 1
    stop = torch.ceil(torch.minimum(centre_max, highest + radius_num) / spacing) + 1
    length = int((stop - start).clamp_min(0).max()) + 1
    return (start.unsqueeze(1) + torch.arange(length, dtype=torch.float64)) * spacing


def _min_ratios(
    sorted_values: SortedMargins,
    centres: Tensor,
    radius_num: Tensor,
    radius_den: Tensor,
    centre_max: Tensor,
    max_mass: float,
    min_mass: float,
    num_error: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Row-wise ``min_c μ([c ± radius_num]) / μ([c ± radius_den])`` over the feasible centres of each row.

    ``centres`` is ``[R, G]`` (or ``[G]``, shared by all rows); ``radius_num``, ``radius_den`` and
    ``centre_max`` are ``[R]``. Feasible: ``c ≤ centre_max``, numerator mass ``≤ max_mass``, denominator mass
    ``≥ min_mass`` and ``> 0``. Returns the least ratio (``inf`` if none is feasible), its centre and whether
    float ends give that centre the same masses, per row.

    With ``num_error`` (``[R]``) the numerator radius is exactly ``radius_num + num_error`` and both intervals
    are evaluated exactly (`_rounded_ends`): every feasible centre is then an admissible interval of exactly
    that ratio, as ``κ_hi`` needs; among the least ratios a centre whose masses do not change with float ends
    (no value within rounding of an end) is preferred. Without it the ends are rounded to nearest (``κ_lo``
    relaxes its radii).
    """
    centres = centres.expand(radius_num.shape[0], -1)
    num = radius_num.unsqueeze(1)
    den = radius_den.unsqueeze(1)
    if num_error is None:
        numerator = sorted_values.interval_mass(centres - num, centres + num)
        denominator = sorted_values.interval_mass(centres - den, centres + den)
    else:
        numerator = sorted_values.interval_mass(*_rounded_ends(centres, num, num_error.unsqueeze(1)))
        denominator = sorted_values.interval_mass(*_rounded_ends(centres, den, torch.zeros_like(den)))
    feasible = (
        (centres <= centre_max.unsqueeze(1)) & (numerator <= max_mass) & (denominator >= min_mass) & (denominator > 0)
    )
    ratios = torch.where(feasible, numerator / denominator.clamp_min(1e-300), math.inf)
    plain = torch.ones_like(feasible)
    if num_error is not None:  # float ends at the feasible least ratios only: they are few
        plain = torch.zeros_like(feasible)
        rows, cols = (feasible & (ratios == ratios.min(dim=1, keepdim=True).values)).nonzero(as_tuple=True)
        at = centres[rows, cols]
        num, den = num[rows, 0], den[rows, 0]
        plain[rows, cols] = (sorted_values.interval_mass(at - num, at + num) == numerator[rows, cols]) & (
            sorted_values.interval_mass(at - den, at + den) == denominator[rows, cols]
        )
    best = _first_least(ratios, plain)
    return ratios.gather(1, best).squeeze(1), centres.gather(1, best).squeeze(1), plain.gather(1, best).squeeze(1)


def _first_least(ratios: Tensor, preferred: Tensor) -> Tensor:
    """``[R, 1]`` column of the least ratio of each row of ``ratios [R, G]``, the first ``preferred`` one if any."""
    least = ratios == ratios.min(dim=1, keepdim=True).values
    chosen = torch.where((least & preferred).any(dim=1, keepdim=True), least & preferred, least)
    return chosen.int().argmax(dim=1, keepdim=True)


def condition_b_constant(
    values: Tensor | SortedMargins,
    dilation: float,
    max_mass: float,
    min_width: float,
    *,
    min_cluster_mass: float = 0.0,
    window_end: float = math.inf,
    weights: Tensor | None = None,
    radius_ratio: float = 1.05,
    centre_spacing: float | None = None,
) -> ConditionBResult:
    r"""Certified bracket ``κ_lo ≤ κ_B ≤ κ_hi`` of the Condition B constant (docs/theory.md §6).

    ``κ_B = inf μ(ΛI)/μ(I)`` over closed intervals ``I = [c − r, c + r]`` with ``r ≥ h/2``,
    ``ΛI = [c − Λr, c + Λr] ⊂ (−∞, w]``, ``μ(I) ≥ m_min``, ``μ(I) > 0`` and ``μ(ΛI) ≤ m``.

    On the radii ``r_i = (h/2) q^i``, ``i = 0..R``:

    * ``κ_hi`` is the least ratio of an admissible interval of grid radius ``r_i``; its intervals are evaluated
      exactly in the float inputs (the ends ``c ± r``, ``c ± Λr`` and ``w − Λr`` rounded inward with
      error-free sums), so the witness is admissible and has exactly the ratio ``κ_hi`` — only the masses
      themselves are float sums (exact for dyadic weights, e.g. ``N`` a power of two);
    * ``κ_lo`` bounds every interval with ``r ∈ [r_i, r_{i+1}]`` by ``μ([c ± Λr_i]) / μ([c ± r_{i+1}])``,
      minimised over every centre for which an admissible interval could exist; radii beyond ``r_R``
      (chosen ``≥`` the window's span ``/ (Λ − 1)``, where ``ΛI`` holds the whole window mass ``M_w``) are
      bounded by ``M_w / μ(δ ≤ w − (Λ−1) r_R)``.

    Centres: with ``centre_spacing=None`` the ratio, piecewise constant in ``c``, is evaluated at every
    breakpoint ``v_k ± r``, ``v_k ± Λr`` and every midpoint between consecutive ones — exact for each radius
    pair, ``O(R · N_w log N_w)``. With ``centre_spacing=b`` the centres run over the grid ``bℤ``: every centre
    ``c`` is within ``b/2`` of a grid point ``c'``, so ``κ_lo`` uses ``[c' ± (Λr_i − b/2)]`` over
    ``[c' ± (r_{i+1} + b/2)]`` (still a certified lower bound) and ``κ_hi`` the grid intervals themselves;
    the cost is ``O(R · (span/b) · log N)``, independent of ``N`` beyond the sort.

    Args:
        values: ``[N]`` values ``v_k`` (margins, or projections of inputs), or an already built
            `SortedMargins` (then ``weights`` is ignored).
        dilation: ``Λ > 1``.
        max_mass: mass cap ``m ∈ (0, 1]``.
        min_width: resolution ``h > 0`` (intervals have radius ``≥ h/2``).
        min_cluster_mass: ``m_min ∈ [0, m]``; lighter clusters are ignored.
        window_end: ``w``; dilated intervals must lie in ``(−∞, w]``.
        weights: optional sample weights.
        radius_ratio: grid ratio ``q`` with ``1 < q < Λ``; the bracket closes as ``q → 1``.
        centre_spacing: ``None`` (exact breakpoints) or a grid step ``b ∈ (0, h]``.
    """
    dilation = check_finite_number(dilation, "dilation")
    if not dilation > 1:
        raise ValueError(f"`dilation` Λ must be > 1 (ΛI must be strictly larger than I), got {dilation}.")
    max_mass = check_positive(max_mass, "max_mass")
    if max_mass > 1:
        raise ValueError(f"`max_mass` m is a mass cap in (0, 1], got {max_mass}.")
    min_width = check_positive(min_width, "min_width")
    min_cluster_mass = check_positive(min_cluster_mass, "min_cluster_mass", strict=False)
    if min_cluster_mass > max_mass:
        raise ValueError(f"`min_cluster_mass` must lie in [0, max_mass={max_mass}], got {min_cluster_mass}.")
    window_end = float(window_end)
    if math.isnan(window_end) or window_end == -math.inf:
        raise ValueError(f"`window_end` must be a real number or +inf, got {window_end}.")
    radius_ratio = check_finite_number(radius_ratio, "radius_ratio")
    if not 1 < radius_ratio < dilation:
        raise ValueError(f"`radius_ratio` q must satisfy 1 < q < dilation={dilation}, got {radius_ratio}.")
    if centre_spacing is not None:
        centre_spacing = check_positive(centre_spacing, "centre_spacing")
        if centre_spacing > min_width:
            raise ValueError(
                f"`centre_spacing` must be at most `min_width`={min_width} to give a useful bracket, "
                f"got {centre_spacing}; pass None for exact breakpoint centres."
            )

    sorted_values = values if isinstance(values, SortedMargins) else SortedMargins(values, weights, name="values")
    settings: dict[str, Any] = dict(
        dilation=dilation,
        max_mass=max_mass,
        min_width=min_width,
        min_cluster_mass=min_cluster_mass,
        window_end=window_end,
        radius_ratio=radius_ratio,
        centre_spacing=centre_spacing,
    )
    no_interval = ConditionBResult(
        lower=math.inf,
        upper=math.inf,
        witness=None,
        witness_indices=torch.zeros(0, dtype=torch.long),
        num_radii=0,
        **settings,
    )
    window_count = int(torch.searchsorted(sorted_values.values, float64(window_end), right=True))
    if window_count == 0:
        return no_interval
    window = sorted_values.values[:window_count]
    lowest, highest = float(window[0]), float(window[-1])
    window_mass = float(sorted_values.cumulative[window_count - 1])
    smallest_radius = min_width / 2
    # an admissible I holds a value ≥ lowest while c + Λr ≤ w, so (Λ − 1) r ≤ w − lowest
    largest_radius = (window_end - lowest) / (dilation - 1)  # inf for an unbounded window
    if smallest_radius > largest_radius:
        return no_interval
    span = highest - lowest
    top_radius = min(max(smallest_radius, span / (dilation - 1), span / 2), largest_radius)
    steps = max(1, math.ceil(math.log(top_radius / smallest_radius) / math.log(radius_ratio)))
    radii = [smallest_radius * radius_ratio**i for i in range(steps + 1)]
    while radii[-1] < top_radius:  # guard against rounding in the step count
        radii.append(radii[-1] * radius_ratio)
    smallest_cluster = max(min_cluster_mass, 1e-300)

    grid_radii = torch.tensor(radii, dtype=torch.float64)
    inner, outer = grid_radii[:-1], grid_radii[1:]
    centre_max = window_end - dilation * grid_radii
    # κ_hi: every interval it reports must be admissible with exactly the reported ratio, so its ends are
    # evaluated exactly (decimal inputs round c ± Λr, which could drop or add a value at an end)
    dilated, dilated_error, exact_max = _exact_dilations(radii, dilation, window_end)
    if centre_spacing is None:
        # exact for each radius pair: one row per radius, centres at every breakpoint and midpoint
        upper_rows, witness_rows, plain_rows, lower_rows = [], [], [], []
        for index, radius in enumerate(radii):
            centres = _breakpoint_centres(window, dilation * radius, radius, float(exact_max[index]))
            ratio, centre, plain = _min_ratios(
                sorted_values,
                centres,
                dilated[index : index + 1],
                grid_radii[index : index + 1],
                exact_max[index : index + 1],
                max_mass,
                smallest_cluster,
                dilated_error[index : index + 1],
            )
            upper_rows.append(ratio)
            witness_rows.append(centre)
            plain_rows.append(plain)
            if index + 1 < len(radii):
                centres = _breakpoint_centres(window, dilation * radius, radii[index + 1], float(centre_max[index]))
                ratio, _, _ = _min_ratios(
                    sorted_values,
                    centres,
                    inner[index : index + 1] * dilation,
                    outer[index : index + 1],
                    centre_max[index : index + 1],
                    max_mass,
                    smallest_cluster,
                )
                lower_rows.append(ratio)
        upper_ratios, witness_centres, witness_plain = (
            torch.cat(upper_rows),
            torch.cat(witness_rows),
            torch.cat(plain_rows),
        )
        lower_ratios = torch.cat(lower_rows)
    else:
        # centres on the grid bℤ; a centre c is within b/2 of a grid centre c', hence the shrunk/grown radii
        half_step = centre_spacing / 2
        upper_ratios, witness_centres, witness_plain = _min_ratios(
            sorted_values,
            _centre_grids(lowest, highest, dilated, grid_radii, exact_max, centre_spacing),
            dilated,
            grid_radii,
            exact_max,
            max_mass,
            smallest_cluster,
            dilated_error,
        )
        radius_num, radius_den = (dilation * inner - half_step).clamp_min(0.0), outer + half_step
        relaxed_max = centre_max[:-1] + half_step
        lower_ratios, _, _ = _min_ratios(
            sorted_values,
            _centre_grids(lowest, highest, radius_num, radius_den, relaxed_max, centre_spacing),
            radius_num,
            radius_den,
            relaxed_max,
            max_mass,
            smallest_cluster,
        )
    best = int(_first_least(upper_ratios.unsqueeze(0), witness_plain.unsqueeze(0)))
    upper = float(upper_ratios[best])
    witness = (float(witness_centres[best]), radii[best]) if math.isfinite(upper) else None
    lower = float(lower_ratios.min())
    # radii beyond r_R: none is admissible past r_max; otherwise r_R ≥ span/(Λ−1), so ΛI holds the whole
    # window mass M_w and I ends left of w − (Λ−1) r_R
    if radii[-1] < largest_radius and window_mass <= max_mass:
        reachable = float(
            sorted_values.cdf(torch.tensor([window_end - (dilation - 1) * radii[-1]], dtype=torch.float64))[0]
        )
        if reachable >= smallest_cluster:
            lower = min(lower, window_mass / reachable)
    if math.isfinite(lower):
        lower = max(1.0, lower * _OUTWARD)
    if witness is None:
        indices = torch.zeros(0, dtype=torch.long)
    else:
        low, high = (
            float(end)
            for end in _rounded_ends(
                witness_centres[best : best + 1], grid_radii[best : best + 1], grid_radii.new_zeros(1)
            )
        )
        inside = (sorted_values.values >= low) & (sorted_values.values <= high)
        indices = torch.sort(sorted_values.indices[inside]).values.cpu()
    lower = min(lower, upper)
    return ConditionBResult(
        lower=lower, upper=upper, witness=witness, witness_indices=indices, num_radii=len(radii), **settings
    )


def condition_b_envelope_values(
    lam: Tensor, kappa: Tensor, dilation: float, zeta: Tensor, min_cluster_mass: Tensor, min_width: Tensor, span: Tensor
) -> Tensor:
    r"""``U_B(λ) = min(ζ, max(m_min, ζ κ^{−J(λ)}))`` at ``lam [B, M]`` with per-row parameters ``[B]`` (Lemma 3).

    ``J(λ) = floor(log_Λ(D / max(λ, h/2)))`` (0 when negative), corrected so that ``Λ^J max(λ, h/2) ≤ D`` holds
    exactly in floating point: rounding never lowers the envelope.
    """
    kappa, zeta, min_cluster_mass, min_width, span = (
        x.to(torch.float64).unsqueeze(1) for x in (kappa, zeta, min_cluster_mass, min_width, span)
    )
    base = torch.maximum(lam.to(torch.float64), min_width / 2)
    steps = torch.floor(torch.log(span / base) / math.log(dilation)).clamp_min(0.0)
    too_far = (dilation**steps) * base > span
    steps = torch.where(too_far, steps - 1, steps).clamp_min(0.0)
    decay = zeta * torch.pow(kappa, -steps)
    return torch.minimum(torch.maximum(decay, min_cluster_mass), zeta)


def condition_b_envelope(
    kappa: float, dilation: float, zeta: float, min_cluster_mass: float, min_width: float, span: float
) -> Envelope:
    r"""Lemma 3 envelope ``U_B(λ) = min(ζ, max(m_min, ζ κ^{−J(λ)}))`` (docs/theory.md §6).

    ``J(λ) = floor(log_Λ(D / max(λ, h/2)))`` (0 when negative) is computed so that
    ``Λ^J max(λ, h/2) ≤ D`` holds exactly in floating point: rounding never lowers the envelope.

    Args:
        kappa: a Condition B constant ``κ ≥ 1`` (use the certified ``κ_lo``).
        dilation: ``Λ > 1``.
        zeta: ``ζ = F(η0)``.
        min_cluster_mass: ``m_min``.
        min_width: ``h``.
        span: ``D = η + η0``.
    """
    kappa = float(kappa)
    if math.isnan(kappa) or kappa < 1:
        raise ValueError(f"`kappa` must be a Condition B constant >= 1 (or inf), got {kappa}.")
    dilation = check_finite_number(dilation, "dilation")
    if not dilation > 1:
        raise ValueError(f"`dilation` Λ must be > 1, got {dilation}.")
    zeta = check_positive(zeta, "zeta", strict=False)
    min_cluster_mass = check_positive(min_cluster_mass, "min_cluster_mass", strict=False)
    min_width = check_positive(min_width, "min_width")
    span = check_positive(span, "span")

    parameters = [float64(value) for value in (kappa, zeta, min_cluster_mass, min_width, span)]

    def envelope(lam: Tensor) -> Tensor:
        kappa_, zeta_, mass_, width_, span_ = parameters
        return condition_b_envelope_values(lam.reshape(1, -1), kappa_, dilation, zeta_, mass_, width_, span_).reshape(
            lam.shape
        )

    return envelope
