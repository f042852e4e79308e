"""SubsetDraw and check_subset_options (callbacks/subset_draw.py): the statistical mode's draw and its options."""

from __future__ import annotations

import pytest
import torch

from lightning_stability.callbacks.subset_draw import SubsetDraw, check_subset_options
from lightning_stability.distributions import MisconfigurationError


@pytest.mark.parametrize(
    ("every", "full_epochs"),
    [(None, []), (1, [0, 1, 2, 3, 4, 5]), (2, [1, 3, 5]), (3, [2, 5])],
)
def test_is_full(every: int | None, full_epochs: list[int]) -> None:
    draw = SubsetDraw(4, every, 0)
    assert [epoch for epoch in range(-1, 6) if draw.is_full(epoch)] == full_epochs
    assert not draw.is_full(-1)  # never the check before training


def test_draw_from_one_hot_weights_is_that_sample() -> None:
    draw = SubsetDraw(5, None, 3)
    indices, counts = draw.draw(4, torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64))
    assert indices.tolist() == [2] and counts.tolist() == [5]
    assert draw.indices is indices and draw.counts is counts


def test_draw_never_takes_zero_weight_samples() -> None:
    weights = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    indices, counts = SubsetDraw(50, None, 0).draw(6, weights)
    assert set(indices.tolist()) <= {0, 2, 4}
    assert indices.tolist() == sorted(set(indices.tolist()))  # ascending and distinct
    assert int(counts.sum()) == 50 and bool((counts >= 1).all())


def test_uniform_draw_without_weights() -> None:
    # 400 draws out of 3 samples: every sample is drawn (a miss has probability 3 · (2/3)^400)
    indices, counts = SubsetDraw(400, None, 1).draw(3, None)
    assert indices.tolist() == [0, 1, 2]
    assert int(counts.sum()) == 400
    assert all(80 < int(count) < 190 for count in counts)  # each about 133


def test_same_seed_same_draw_other_seed_other_draw() -> None:
    first = SubsetDraw(20, None, 7).draw(1000, None)
    again = SubsetDraw(20, None, 7).draw(1000, None)
    other = SubsetDraw(20, None, 8).draw(1000, None)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_draw_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    SubsetDraw(10, None, 0).draw(50, None)
    assert torch.equal(torch.rand(3), expected)


def test_drawn_once_later_weights_ignored() -> None:
    draw = SubsetDraw(3, None, 0)
    draw.draw(4, torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64))
    indices, counts = draw.draw(4, torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64))
    assert indices.tolist() == [0] and counts.tolist() == [3]


def test_weights_of_wrong_length_refused() -> None:
    with pytest.raises(MisconfigurationError, match=r"`weights` has 3 entries but the training data has 4"):
        SubsetDraw(3, None, 0).draw(4, torch.ones(3, dtype=torch.float64))


def test_checkpoint_subset_beyond_the_data_refused() -> None:
    draw = SubsetDraw(3, None, 0)
    draw.load_state_dict({"indices": torch.tensor([1, 9]), "counts": torch.tensor([2, 1])})
    with pytest.raises(MisconfigurationError, match=r"reaches sample 9 but the training data has 9 samples"):
        draw.draw(9, None)
    indices, counts = draw.draw(10, None)  # sample 9 exists in 10 samples: the checkpoint's draw is kept
    assert indices.tolist() == [1, 9] and counts.tolist() == [2, 1]


def test_counts_of_looks_up_by_index() -> None:
    draw = SubsetDraw(9, None, 0)
    draw.load_state_dict({"indices": torch.tensor([2, 5, 7, 11]), "counts": torch.tensor([1, 4, 3, 1])})
    assert draw.counts_of(torch.tensor([5, 11])).tolist() == [4, 1]
    assert draw.counts_of(torch.tensor([2, 5, 7, 11])).tolist() == [1, 4, 3, 1]


def test_state_dict_round_trip() -> None:
    draw = SubsetDraw(6, 2, 4)
    assert draw.state_dict() == {"indices": None, "counts": None}
    draw.load_state_dict({"indices": torch.tensor([0, 3]), "counts": torch.tensor([5, 1])})
    fresh = SubsetDraw(6, 2, 4)
    fresh.load_state_dict(draw.state_dict())
    assert fresh.indices.tolist() == [0, 3] and fresh.counts.tolist() == [5, 1]
    assert (fresh.size, fresh.seed, fresh.full_every_n_epochs) == (6, 4, 2)


def test_valid_options_pass() -> None:
    check_subset_options(None, 0.95, None, "uniform")
    check_subset_options(None, 0.95, None, "balanced")  # balanced is fine without the statistical mode
    check_subset_options(10, 0.5, 3, torch.ones(4))
    check_subset_options(1, 0.999, None, "uniform")


@pytest.mark.parametrize(
    ("subset_size", "confidence", "full_every", "weights", "option"),
    [
        (None, 0.95, 2, "uniform", "full_every_n_epochs"),
        (0, 0.95, None, "uniform", "subset_size"),
        (-3, 0.95, None, "uniform", "subset_size"),
        (True, 0.95, None, "uniform", "subset_size"),
        (2.0, 0.95, None, "uniform", "subset_size"),
        (10, 0.0, None, "uniform", "confidence"),
        (10, 1.0, None, "uniform", "confidence"),
        (10, 1.5, None, "uniform", "confidence"),
        (10, True, None, "uniform", "confidence"),
        (10, "0.9", None, "uniform", "confidence"),
        (None, 5.0, None, "uniform", "confidence"),  # wrong even where the statistical mode is off
        (None, 0.0, None, "uniform", "confidence"),
        (10, 0.9, 0, "uniform", "full_every_n_epochs"),
        (10, 0.9, True, "uniform", "full_every_n_epochs"),
        (10, 0.9, 1.5, "uniform", "full_every_n_epochs"),
        (10, 0.9, None, "balanced", "weights='balanced'"),
    ],
)
def test_bad_options_name_the_option(subset_size, confidence, full_every, weights, option: str) -> None:
    with pytest.raises(MisconfigurationError, match=f"`{option}") as caught:
        check_subset_options(subset_size, confidence, full_every, weights)
    assert str(caught.value).startswith("StabilityMonitor: ")
