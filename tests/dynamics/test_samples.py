"""Per-sample statistics (docs/samples.md S1–S4) against a plain-Python replay of the passes, sample by sample."""

from __future__ import annotations

import math
import random
import sys

import pytest
import torch

from lightning_stability.dynamics import SAMPLE_COLUMNS, SampleStatistics, worst_margin_samples
from lightning_stability.files import load_samples_csv, save_samples_csv


def random_passes(num_samples: int, num_checks: int, seed: int, subset: bool) -> list[tuple[torch.Tensor, ...]]:
    """Passes over all samples (or random subsets, in random order), margins around 0 so samples flip often."""
    rng = random.Random(seed)
    passes = []
    for _ in range(num_checks):
        chosen = rng.sample(range(num_samples), rng.randint(1, num_samples)) if subset else list(range(num_samples))
        margins = [rng.choice([rng.uniform(-2, 2), 0.0, 1.5]) for _ in chosen]
        losses = [rng.uniform(0.01, 3.0) for _ in chosen]
        passes.append(
            (
                torch.tensor(chosen),
                torch.tensor([k % 3 for k in chosen]),
                torch.tensor(margins, dtype=torch.float64),
                torch.tensor(losses, dtype=torch.float64),
                torch.tensor([rng.randrange(3) for _ in chosen]),
            )
        )
    return passes


def oracle(passes: list[tuple[torch.Tensor, ...]]) -> tuple[dict[int, dict], list[list[int]]]:
    """Every statistic from each sample's own list of (check, margin, loss, predicted, target), by hand."""
    history: dict[int, list[tuple[int, float, float, int, int]]] = {}
    forgotten_per_pass = []
    for check, (indices, targets, margins, losses, predicted) in enumerate(passes):
        forgotten = []
        for k, y, m, loss, p in zip(
            indices.tolist(), targets.tolist(), margins.tolist(), losses.tolist(), predicted.tolist()
        ):
            seen = history.setdefault(k, [])
            if seen and seen[-1][1] > 0 and not m > 0:
                forgotten.append(k)
            seen.append((check, m, loss, p, y))
        forgotten_per_pass.append(sorted(forgotten))
    rows = {}
    for k, seen in history.items():
        n = len(seen)
        probabilities = [math.exp(-loss) for _, _, loss, _, _ in seen]
        mean_p = math.fsum(probabilities) / n
        first_learned = -1
        for check, m, *_ in reversed(seen):
            if not m > 0:
                break
            first_learned = check
        rows[k] = dict(
            index=k,
            target=seen[-1][4],
            last_margin=seen[-1][1],
            aum=math.fsum(m for _, m, *_ in seen) / n,
            forgetting_events=sum(1 for a, b in zip(seen, seen[1:]) if a[1] > 0 and not b[1] > 0),
            first_learned_check=first_learned,
            confidence=mean_p,
            variability=math.sqrt(math.fsum((p - mean_p) ** 2 for p in probabilities) / n),
            correctness=sum(1 for _, m, *_ in seen if m > 0) / n,
            predicted=seen[-1][3],
            checks=n,
        )
    return rows, forgotten_per_pass


def assert_matches(result, rows: dict[int, dict]) -> None:
    assert result.index.tolist() == sorted(rows)
    for position, k in enumerate(result.index.tolist()):
        expected = rows[k]
        for name in SAMPLE_COLUMNS:
            value = getattr(result, name)[position].item()
            if isinstance(expected[name], float):
                assert value == pytest.approx(expected[name], rel=1e-12, abs=1e-14), (k, name)
            else:
                assert value == expected[name], (k, name)


@pytest.mark.parametrize("subset", [False, True, "mixed"], ids=["every_sample", "subsets", "mixed"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_statistics_equal_a_sample_by_sample_replay(seed: int, subset: bool | str) -> None:
    """Full passes in index order take the sliced path of `SampleStatistics.update`, subsets in random order the
    indexed one; "mixed" alternates them (a subset pass first, so the state grows under both)."""
    if subset == "mixed":
        partial = random_passes(num_samples=23, num_checks=5, seed=seed, subset=True)
        full = random_passes(num_samples=23, num_checks=4, seed=seed + 10, subset=False)
        passes = [p for pair in zip(partial, full) for p in pair] + partial[4:]
    else:
        passes = random_passes(num_samples=23, num_checks=9, seed=seed, subset=bool(subset))
    rows, forgotten = oracle(passes)
    stats = SampleStatistics()
    for pass_, expected_forgotten in zip(passes, forgotten, strict=True):
        assert stats.update(*pass_).tolist() == expected_forgotten
    assert stats.checks == len(passes)
    assert_matches(stats.result(), rows)
    assert sum(r["forgetting_events"] for r in rows.values()) > 0  # the data exercise the transitions


def test_a_sample_learned_forgotten_and_relearned() -> None:
    """By hand: margins 1, −1, 2, 3 → one forgetting event, learned from check 2, correct 3 of 4."""
    stats = SampleStatistics()
    for margin in (1.0, -1.0, 2.0, 3.0):
        stats.update(
            torch.tensor([0]), torch.tensor([1]), torch.tensor([margin]), torch.tensor([0.5]), torch.tensor([1])
        )
    result = stats.result()
    assert result.forgetting_events.tolist() == [1]
    assert result.first_learned_check.tolist() == [2]
    assert result.correctness.tolist() == [0.75]
    assert result.aum.tolist() == [1.25]
    assert result.variability.tolist() == [0.0]  # the same probability at every check
    assert result.confidence.tolist() == pytest.approx([math.exp(-0.5)], rel=1e-15)
    # a zero margin is wrong (ties count as errors)
    assert stats.update(
        torch.tensor([0]), torch.tensor([1]), torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([1])
    ).tolist() == [0]
    assert stats.result().first_learned_check.tolist() == [-1]


def test_state_dict_resumes_exactly() -> None:
    passes = random_passes(num_samples=40, num_checks=8, seed=5, subset=True)
    full = SampleStatistics(keep_history=True)
    for pass_ in passes:
        full.update(*pass_)
    first = SampleStatistics(keep_history=True)
    for pass_ in passes[:3]:
        first.update(*pass_)
    state = first.state_dict()
    resumed = SampleStatistics(keep_history=True)
    resumed.load_state_dict(state)
    for pass_ in passes[3:]:
        resumed.update(*pass_)
    for name in SAMPLE_COLUMNS:
        assert torch.equal(getattr(resumed.result(), name), getattr(full.result(), name)), name
    assert len(resumed.history) == len(full.history) == len(passes)
    for (i, m), (j, n) in zip(resumed.history, full.history, strict=True):
        assert torch.equal(i, j) and torch.equal(m, n)
    with pytest.raises(ValueError, match="lacks"):
        SampleStatistics().load_state_dict({"checks": 1})


def test_history_only_when_asked() -> None:
    stats = SampleStatistics()
    stats.update(*random_passes(5, 1, 0, False)[0])
    assert stats.history == [] and stats.state_dict()["history"] == []


@pytest.mark.parametrize(
    ("indices", "margins", "message"),
    [
        ([0, 0], [1.0, 1.0], "twice"),
        ([-1, 0], [1.0, 1.0], ">= 0"),
        ([0, 1], [1.0, math.nan], "finite"),
        ([0, 1, 2], [1.0, 1.0], "one entry per sample"),
    ],
)
def test_update_rejects_bad_passes(indices, margins, message) -> None:
    n = len(margins)
    with pytest.raises(ValueError, match=message):
        SampleStatistics().update(
            torch.tensor(indices),
            torch.zeros(n, dtype=torch.long),
            torch.tensor(margins),
            torch.ones(n),
            torch.zeros(n),
        )


def test_worst_margin_samples_is_a_stable_sort() -> None:
    indices = torch.tensor([10, 11, 12, 13, 14, 15])
    margins = torch.tensor([0.5, -1.0, 0.5, -1.0, 2.0, -3.0], dtype=torch.float64)
    by_hand = [
        k
        for _, _, k in sorted(
            (m, position, k) for position, (k, m) in enumerate(zip(indices.tolist(), margins.tolist()))
        )
    ]
    for k in range(7):
        assert worst_margin_samples(indices, margins, k).tolist() == by_hand[:k]
    with pytest.raises(ValueError):
        worst_margin_samples(indices, margins, -1)


def test_suspects_rank_by_the_chosen_score() -> None:
    stats = SampleStatistics()
    for pass_ in random_passes(30, 6, 3, False):
        stats.update(*pass_)
    result = stats.result()
    rows, _ = oracle(random_passes(30, 6, 3, False))
    by_aum = sorted(rows, key=lambda k: (rows[k]["aum"], k))[:5]
    assert result.suspects(5).index.tolist() == by_aum
    by_forgetting = sorted(rows, key=lambda k: (-rows[k]["forgetting_events"], k))[:5]
    assert result.suspects(5, by="forgetting_events").index.tolist() == by_forgetting
    with pytest.raises(ValueError, match="`by`"):
        result.suspects(5, by="target")
    with pytest.raises(ValueError, match="`k`"):
        result.suspects(0)


def test_to_pandas_and_the_csv_file_round_trip(tmp_path) -> None:
    stats = SampleStatistics()
    for pass_ in random_passes(12, 4, 7, True):
        stats.update(*pass_)
    result = stats.result()
    frame = result.to_pandas()
    assert list(frame.columns) == list(SAMPLE_COLUMNS) and len(frame) == len(result)
    unlearned = result.first_learned_check < 0
    assert bool(unlearned.any()) and bool((~unlearned).any())
    assert frame["first_learned_check"].isna().tolist() == unlearned.tolist()
    path = save_samples_csv(tmp_path / "samples.csv", result)
    assert path.read_text().splitlines()[0] == ",".join(SAMPLE_COLUMNS)
    import pandas as pd

    read = pd.read_csv(path)
    assert read["first_learned_check"].isna().tolist() == unlearned.tolist()
    assert read["aum"].tolist() == result.aum.tolist()  # floats are written exactly
    loaded = load_samples_csv(tmp_path)
    for name in SAMPLE_COLUMNS:
        assert torch.equal(getattr(loaded, name), getattr(result, name)), name
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "samples.csv").write_text("index,target\n0,1\n")
    with pytest.raises(ValueError, match="lacks the columns"):
        load_samples_csv(tmp_path / "bad" / "samples.csv")
    with pytest.raises(FileNotFoundError, match="save_samples"):
        load_samples_csv(tmp_path / "bad" / "nothing")


def test_to_pandas_without_pandas_says_how_to_install(monkeypatch) -> None:
    stats = SampleStatistics()
    stats.update(*random_passes(3, 1, 0, False)[0])
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        stats.result().to_pandas()
