"""lightning_stability.callbacks.blame_pictures: which blamed samples a cut set shows (its smallest margins, most
wrong first), in the live grid and in the margin file's cells, on a 100-class pass."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch.utils.data import TensorDataset

from lightning_stability.callbacks.blame_pictures import PICTURE_SETS, WHY, BlamePictures, blame_title, blamed_samples
from lightning_stability.dynamics.samples import smallest_margins_first
from lightning_stability.records import BLAME_SETS, BlameSets, MarginPass

N = 5000
SIZE = 16


def hundred_classes() -> tuple[MarginPass, BlameSets]:
    """5,000 samples (indices 0, 3, 6, …: not positions) of 100 random classes, margins rounded to 0.1 so that many
    are equal; 1,227 forgotten, a witness of 40 and a data cluster of 30 of them plus 2 indices the pass lacks."""
    generator = torch.Generator().manual_seed(0)
    indices = 3 * torch.arange(N)
    targets = torch.randint(0, 100, (N,), generator=generator)
    margins = (torch.randn(N, generator=generator, dtype=torch.float64) * 10).round() / 10
    predicted = torch.where(margins > 0, targets, (targets + 1) % 100)
    many = MarginPass(indices, targets, margins, torch.nn.functional.softplus(-margins), predicted, 100)
    order = torch.randperm(N, generator=generator)
    blame = BlameSets(
        forgotten=torch.sort(indices[order[:1227]]).values,
        worst=indices[torch.sort(margins, stable=True).indices[:SIZE]],
        witness=torch.sort(indices[order[1227:1267]]).values,
        data_cluster=torch.cat([indices[order[1267:1297]], torch.tensor([1, 4])]),  # 1 and 4: no sample of the pass
    )
    return many, blame


def smallest(members: torch.Tensor, many: MarginPass, k: int) -> list[int]:
    """The ``k`` members of smallest margin, equal margins by index, members without a margin last (by index),
    computed with ``sorted``."""
    margin_of = dict(zip(many.indices.tolist(), many.margins.tolist(), strict=True))
    key = {i: (0, margin_of[i], i) if i in margin_of else (1, 0.0, i) for i in members.tolist()}
    return sorted(key, key=key.__getitem__)[:k]


def test_the_cells_of_a_cut_set_are_its_smallest_margins_most_wrong_first() -> None:
    many, blame = hundred_classes()
    forgotten_margins = many.margins[torch.searchsorted(many.indices, blame.forgotten)]
    assert forgotten_margins.unique().numel() < forgotten_margins.numel() // 10  # many equal margins
    cells = blamed_samples(blame, many, SIZE)
    for key in BLAME_SETS:
        members = getattr(blame, key)
        assert cells[key]["index"].tolist() == smallest(members, many, SIZE), key
        assert cells[key]["total"] == members.numel() and cells[key]["picked"] == "smallest margins"
    assert cells["forgotten"]["index"].tolist() != blame.forgotten[:SIZE].tolist()  # not the lowest indices
    forgotten = cells["forgotten"]
    positions = [many.indices.tolist().index(i) for i in forgotten["index"].tolist()]
    assert forgotten["margin"].tolist() == [many.margins[p].item() for p in positions]
    assert forgotten["target"].tolist() == [many.targets[p].item() for p in positions]
    assert forgotten["predicted"].tolist() == [many.predicted[p].item() for p in positions]
    # the data cluster is 32 (> 16): its two indices without a margin are not among the shown
    assert not {1, 4} & set(cells["data_cluster"]["index"].tolist())


def test_members_without_a_margin_come_last_and_a_short_set_is_shown_whole() -> None:
    many, _ = hundred_classes()
    members = torch.tensor([4, 9, 1, 0])  # 0 and 9 are samples of the pass; 1 and 4 are not
    expected = sorted([0, 9], key=lambda i: (many.margins[i // 3].item(), i)) + [1, 4]
    assert smallest_margins_first(members, many.indices, many.margins, 10).tolist() == expected
    assert smallest_margins_first(members, many.indices, many.margins, 0).tolist() == []
    cut = BlameSets(members, members[:0], members[:0], members[:0])
    cell = blamed_samples(cut, many, 3)["forgotten"]
    assert cell["index"].tolist() == expected[:3] and cell["target"].tolist()[2] == -1 and math.isnan(cell["margin"][2])


def test_the_live_grid_shows_the_causes_first_and_titles_a_cut_set_by_its_smallest_margins() -> None:
    many, blame = hundred_classes()
    trainer = SimpleNamespace(is_global_zero=True)
    dataset = TensorDataset(torch.rand(3 * N, 4), torch.zeros(3 * N, dtype=torch.long))  # features: a table
    rows = BlamePictures(blame_size=SIZE, to_image=None).cells(trainer, dataset, blame, many)
    assert list(PICTURE_SETS) == ["worst", "witness", "data_cluster", "forgotten"]  # causes, then the flipped
    assert [name for name, _ in rows] == [
        "cause: smallest margins (16)",
        "cause: Condition B witness interval: 16 of 40 shown: the 16 smallest margins",
        "cause: isolated input cluster (data check): 16 of 32 shown: the 16 smallest margins",
        "flipped to wrong since the previous check: 16 of 1,227 shown: the 16 smallest margins",
    ]
    assert set(PICTURE_SETS) == set(BLAME_SETS)
    for (_, cells), key in zip(rows, PICTURE_SETS, strict=True):
        members = getattr(blame, key)
        assert [cell.index for cell in cells] == smallest(members, many, SIZE), key
        assert {cell.why for cell in cells} == {WHY[key]}
        margins = [cell.margin for cell in cells]
        assert margins == sorted(margins)
    assert rows[0][1][0].margin == many.margins.min().item()
    assert WHY["forgotten"] == "flipped"


def test_the_title_names_the_causes_shown_then_the_flipped() -> None:
    assert blame_title(8, ["worst", "witness", "forgotten"], pictures=True) == (
        "instability at epoch 8: causes (smallest margins, B witness), then the samples that flipped "
        "(label -> prediction)"
    )
    assert blame_title(8, ["worst", "witness", "data_cluster", "forgotten"], pictures=False) == (
        "instability at epoch 8: causes (smallest margins, B witness, data cluster), then the samples that flipped"
    )
    assert blame_title(3, ["worst"], pictures=False) == "instability at epoch 3: causes (smallest margins)"
    assert blame_title(3, ["forgotten"], pictures=True) == (
        "instability at epoch 3: the samples that flipped (label -> prediction)"
    )
    assert blame_title(3, [], pictures=True) == "instability at epoch 3: no sample to blame"
