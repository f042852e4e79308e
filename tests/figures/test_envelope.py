"""lightning_stability.figures.envelope: the envelope figure says which side is good and fits TensorBoard's image
cards."""

from __future__ import annotations

import pytest
import torch

from lightning_stability import theory
from lightning_stability.assess.envelopes import envelope_curves
from lightning_stability.figures.envelope import envelope_figure

from ..helpers import SMALL_GRID
from .helpers import NUM_CLASSES, N, legend_texts, margins_with_accuracy

pytest.importorskip("matplotlib")


def test_envelope_figure_says_which_side_is_good() -> None:
    margins = margins_with_accuracy(0.9, seed=7)
    weights = torch.full((N,), 1 / N, dtype=torch.float64)
    report = theory.certify(margins, NUM_CLASSES, loss=0.4, **SMALL_GRID)
    curves = envelope_curves(report)
    figure = envelope_figure(curves, margins, weights, epoch=3)
    (axes,) = figure.axes
    assert axes.get_title().startswith("epoch 3: ")
    legend = axes.get_legend()
    assert legend.get_title().get_text() == "floor holds while F ≤ U up to η0"
    a, b = report.theorem_a, report.theorem_b
    assert legend_texts(axes) == [
        "F (empirical)",
        f"U_A → A floor {a.floor:.3f}",
        f"end of A's window, η0 = {a.eta0:.3g}",
        f"U_B → B floor {b.floor:.3f}",
        f"end of B's window, η0 = {b.eta0:.3g}",
    ]
    # each window's end is a vertical line at its η0: beyond it F may cross U without breaking the floor
    ends = {line.get_label(): line.get_xdata() for line in axes.get_lines() if line.get_label().startswith("end of")}
    assert [float(x[0]) for x in ends.values()] == [a.eta0, b.eta0]
    assert all(float(x[0]) == float(x[1]) for x in ends.values())
    # TensorBoard's image cards are 350 px wide: the figure is drawn at that width, no text under 9 points
    width, height = figure.get_size_inches() * figure.dpi
    assert 340 <= round(width) <= 360 and height < width
    sizes = [text.get_fontsize() for text in [*legend.get_texts(), legend.get_title(), axes.title, axes.xaxis.label]]
    sizes += [label.get_fontsize() for label in axes.get_xticklabels()]
    assert min(sizes) >= 9


def test_envelope_curves_are_the_theorems_envelopes_on_their_windows() -> None:
    """The values the figure draws: U_A and U_B of the report's parameters at δ = λ − η, λ ∈ (0, η + η0]."""
    margins = margins_with_accuracy(0.9, seed=7)
    report = theory.certify(margins, NUM_CLASSES, loss=0.4, **SMALL_GRID)
    a, b = report.theorem_a, report.theorem_b
    curve_a, curve_b = envelope_curves(report, points=9)
    lam_a = torch.linspace(0, a.eta + a.eta0, 9, dtype=torch.float64)[1:]
    assert torch.equal(curve_a.delta, lam_a - a.eta)
    u_a = theory.condition_a_envelope(a.condition_a_constant, a.gamma, a.lam0, a.zeta)
    assert torch.equal(curve_a.envelope, u_a(lam_a))
    lam_b = torch.linspace(0, b.eta + b.eta0, 9, dtype=torch.float64)[1:]
    u_b = theory.condition_b_envelope(
        b.kappa_lower, b.dilation, b.zeta, b.min_cluster_mass, b.min_width, b.eta + b.eta0
    )
    assert torch.equal(curve_b.envelope, u_b(lam_b))
    assert (curve_a.name, curve_a.eta0, curve_a.floor, curve_b.name, curve_b.floor) == (
        "A",
        a.eta0,
        a.floor,
        "B",
        b.floor,
    )
