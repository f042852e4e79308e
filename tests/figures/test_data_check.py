"""lightning_stability.figures.data_check: the witness picture of the data-cluster check (docs/theory.md §9)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_stability import theory
from lightning_stability.figures.data_check import witness_figure

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures witness_figure saves."""
    figures: list[Figure] = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def report(witness: tuple[float, float] | None, indices: list[int], d: int) -> theory.DataClusterReport:
    """A hand-made report whose worst direction is the first coordinate."""
    direction = torch.zeros(d, dtype=torch.float64)
    direction[0] = 1.0
    return theory.DataClusterReport(
        constant_lower=0.95,
        constant_upper=1.0,
        worst_direction=direction,
        worst_direction_kind="principal",
        witness=witness,
        witness_indices=torch.tensor(indices, dtype=torch.long),
        directions=direction[None],
        kinds=("principal",),
        lower=torch.tensor([0.95], dtype=torch.float64),
        upper=torch.tensor([1.0], dtype=torch.float64),
        resolutions=torch.tensor([0.1], dtype=torch.float64),
        max_mass=0.2,
        min_cluster_mass=0.05,
        dilation=3.0,
        num_samples=10,
    )


def x_extent(patch) -> list[float]:
    """The data x range a span covers (a Rectangle or a Polygon, by matplotlib version)."""
    xs = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 0]
    return [float(xs.min()), float(xs.max())]


def square_inputs() -> torch.Tensor:
    # 10 inputs of 2 × 2 pixels: first pixel 0.1·k, samples 8 and 9 at 5 (the cluster)
    inputs = torch.arange(40, dtype=torch.float32).reshape(10, 2, 2) / 40
    inputs[:, 0, 0] = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 5.0, 5.0])
    return inputs


def test_witness_figure_of_square_inputs(tmp_path: Path, saved: list[Figure]) -> None:
    inputs = square_inputs()
    output = witness_figure(report((5.0, 0.25), [8, 9], 4), inputs, tmp_path / "sub" / "witness.png")
    assert output == tmp_path / "sub" / "witness.png" and output.is_file()
    assert png_size(output) == (1440, 432)  # 16 × (2.4 · 2 rows) inches at 90 dpi
    (figure,) = saved
    histogram, *images = figure.axes
    assert histogram.get_title() == "projections on the worst (principal) direction; κ_hi = 1.0000"

    spans = {patch.get_label(): patch for patch in histogram.patches if not patch.get_label().startswith("_")}
    assert sorted(spans) == ["dilated ×3", "witness slab"]
    assert x_extent(spans["witness slab"]) == pytest.approx([4.75, 5.25])
    assert x_extent(spans["dilated ×3"]) == pytest.approx([4.25, 5.75])
    assert [text.get_text() for text in histogram.get_legend().get_texts()] == ["witness slab", "dilated ×3"]
    # the histogram: every input's projection (its first pixel), 2 of them at 5
    bars = sorted((patch for patch in histogram.patches if patch not in spans.values()), key=lambda bar: bar.get_x())
    assert len(bars) == 120 and sum(bar.get_height() for bar in bars) == 10
    assert bars[0].get_x() == pytest.approx(0.0) and bars[-1].get_x() + bars[-1].get_width() == pytest.approx(5.0)
    assert bars[-1].get_height() == 2  # the cluster at 5, in the last bin

    # one image per witness sample, titled with its index, drawing its pixels
    assert [axes.get_title() for axes in images] == ["#8", "#9"]
    for axes, index in zip(images, [8, 9]):
        np.testing.assert_array_equal(axes.get_images()[0].get_array(), inputs[index].double().numpy())


def test_non_square_inputs_and_no_witness_give_the_projection_alone(tmp_path: Path, saved: list[Figure]) -> None:
    inputs = torch.zeros(6, 3)
    inputs[:, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    witness_figure(report((5.0, 0.25), [5], 3), inputs, tmp_path / "a.png")  # 3 values: not a square image
    witness_figure(report(None, [], 4), torch.zeros(5, 4), tmp_path / "b.png")
    assert png_size(tmp_path / "a.png") == png_size(tmp_path / "b.png") == (1440, 216)
    with_witness, without = saved
    assert len(with_witness.axes) == 1 and with_witness.axes[0].get_legend() is not None
    assert len(without.axes) == 1 and without.axes[0].get_legend() is None
    assert all(patch.get_label() not in ("witness slab", "dilated ×3") for patch in without.axes[0].patches)
