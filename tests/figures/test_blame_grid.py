"""lightning_stability.figures.blame_grid: what a blame cell shows for each kind of input, and the blame grid
(docs/samples.md)."""

from __future__ import annotations

import pytest
import torch

from lightning_stability.figures.blame_grid import (
    MAX_VALUES_SHOWN,
    BlameCell,
    as_picture,
    blame_figure,
    default_to_image,
)


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        (torch.rand(1, 28, 28), (28, 28)),  # grey [C, H, W]
        (torch.rand(3, 8, 6), (8, 6, 3)),  # colour [C, H, W] -> [H, W, C]
        (torch.rand(8, 6, 3), (8, 6, 3)),  # [H, W, C]
        (torch.rand(5, 7), (5, 7)),  # [H, W]
        (torch.rand(784), (28, 28)),  # flattened square
        (torch.rand(64), (8, 8)),
        (torch.rand(1), (1,)),  # short vectors: their values
        (torch.rand(MAX_VALUES_SHOWN), (MAX_VALUES_SHOWN,)),
        ([0.5, 1.5], (2,)),
    ],
)
def test_pictures_of_images_and_short_vectors(value, shape) -> None:
    picture = as_picture(value)
    assert picture is not None and tuple(picture.shape) == shape
    flat = torch.as_tensor(value, dtype=torch.float32)
    if flat.dim() == 3 and flat.shape[0] == 3:
        assert torch.equal(picture[..., 1], flat[1])  # channel last, values unchanged
    else:
        assert torch.equal(picture.reshape(-1), flat.reshape(-1))


@pytest.mark.parametrize(
    "value", [torch.rand(10), torch.rand(2, 5, 5), torch.rand(1, 1, 9), torch.rand(3, 3, 3, 3), torch.rand(0), "text"]
)
def test_other_inputs_have_no_picture(value) -> None:
    assert as_picture(value) is None


def test_default_to_image_picks_the_input() -> None:
    x, y = torch.rand(4), torch.tensor(1)
    assert default_to_image((x, y)) is x
    assert default_to_image({"label": y, "pixels": x}) is x
    assert default_to_image(x) is x
    assert default_to_image(3) is None


def test_blame_figure_has_one_row_per_non_empty_set_and_marks_errors() -> None:
    cell = lambda i, t, p: BlameCell(index=i, target=t, predicted=p, picture=torch.rand(8, 8))
    rows = [
        ("forgotten (2)", [cell(3, 1, 2), cell(4, 0, 0)]),
        ("worst (0)", []),
        ("witness (1)", [BlameCell(9, 1, 1, torch.tensor([0.5]))]),
    ]
    figure = blame_figure(rows, "title")
    subfigures = figure.subfigs
    assert [s._suptitle.get_text() for s in subfigures] == ["forgotten (2)", "witness (1)"]
    titles = [(a.get_title(), a.title.get_color()) for a in subfigures[0].axes if a.get_title()]
    assert titles == [("#3\ny=1 → 2", "red"), ("#4\ny=0 → 0", "black")]
    assert [a.texts[0].get_text() for a in subfigures[1].axes if a.texts] == ["0.5"]
    assert blame_figure([("worst (0)", [])], "t").texts[-1].get_text() == "no sample to blame"
