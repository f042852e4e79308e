"""lightning_stability.records: the MarginPass and BlameSets records and the BLAME_SETS schema (docs/samples.md S4)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lightning_stability.records import BLAME_SETS, BlameSets, MarginPass


def test_blame_sets_schema_keys_and_row_titles() -> None:
    # the keys of the per-check file's ``blame`` entry (docs/samples.md S4), in the grid's row order
    assert list(BLAME_SETS) == ["forgotten", "worst", "witness", "data_cluster"]
    assert BLAME_SETS == {
        "forgotten": "forgotten since the previous check",
        "worst": "worst margins",
        "witness": "Condition B witness interval",
        "data_cluster": "isolated input cluster (data check)",
    }


def test_blame_sets_as_dict_follows_the_schema() -> None:
    sets = BlameSets(
        forgotten=torch.tensor([4]),
        worst=torch.tensor([1, 2, 3]),
        witness=torch.tensor([7, 8]),
        data_cluster=torch.zeros(0, dtype=torch.long),
    )
    as_dict = sets.as_dict()
    assert list(as_dict) == ["forgotten", "worst", "witness", "data_cluster"]
    assert {key: value.tolist() for key, value in as_dict.items()} == {
        "forgotten": [4],
        "worst": [1, 2, 3],
        "witness": [7, 8],
        "data_cluster": [],
    }
    assert as_dict["worst"] is sets.worst  # the same tensors, not copies
    assert [field.name for field in dataclasses.fields(BlameSets)] == list(BLAME_SETS)


def test_margin_pass_fields_and_frozen() -> None:
    margins = torch.tensor([0.5, -0.25, 0.0], dtype=torch.float64)
    margin_pass = MarginPass(
        indices=torch.tensor([0, 2, 5]),
        targets=torch.tensor([1, 0, 2]),
        margins=margins,
        losses=torch.tensor([0.4, 1.2, 0.7], dtype=torch.float64),
        predicted=torch.tensor([1, 2, 0]),
        num_classes=3,
    )
    # the six per-pass fields come first, in this order (later fields, if any, have defaults)
    assert [field.name for field in dataclasses.fields(MarginPass)][:6] == [
        "indices",
        "targets",
        "margins",
        "losses",
        "predicted",
        "num_classes",
    ]
    # positional construction follows the same order (tests and files build it so)
    names = ("indices", "targets", "margins", "losses", "predicted", "num_classes")
    positional = MarginPass(*(getattr(margin_pass, name) for name in names))
    assert positional.margins is margins and positional.num_classes == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        margin_pass.num_classes = 4  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        BlameSets(*(torch.zeros(0),) * 4).worst = torch.ones(1)  # type: ignore[misc]
