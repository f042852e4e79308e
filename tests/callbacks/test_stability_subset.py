"""The statistical mode (issue 15, docs/theory.md §11) and the cost metrics, end to end through a Trainer.

Expected values are recomputed in the test: the draw from its definition (``torch.multinomial`` with replacement
from a generator seeded with ``subset_seed``), the margins by hand (`hand_margin_pass`), the Clopper–Pearson bound
with scipy's beta quantile.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scipy.stats import beta
from torch.utils.data import Subset

from lightning_stability import StabilityMonitor
from lightning_stability.callbacks.data_probe import PROBE_SIZE
from lightning_stability.distributions import MisconfigurationError

from ..helpers import MLP, SMALL_GRID, Recorder, csv_rows, epoch_checkpoints, fit, hand_margin_pass, make_dataset

N = 300


class CountingMLP(MLP):
    """Counts the samples its forward sees in eval mode (the monitor's passes)."""

    def __init__(self) -> None:
        super().__init__()
        self.evaluated = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            self.evaluated += x.shape[0]
        return super().forward(x)


def drawn(size: int, seed: int, weights: torch.Tensor | None = None) -> tuple[list[int], list[int]]:
    """The draw by its definition: ``size`` indices with replacement, probabilities ∝ weights."""
    mu = torch.ones(N, dtype=torch.float64) if weights is None else weights
    draws = torch.multinomial(mu, size, replacement=True, generator=torch.Generator().manual_seed(seed)).tolist()
    unique = sorted(set(draws))
    return unique, [draws.count(index) for index in unique]


def test_subset_checks_are_estimates_and_every_second_epoch_is_full() -> None:
    dataset = make_dataset(N)
    monitor = StabilityMonitor(subset_size=120, full_every_n_epochs=2, subset_seed=3, grid=SMALL_GRID)
    recorder = Recorder(monitor)
    model = CountingMLP()
    fit([monitor, recorder], model, dataset, max_epochs=4)
    kinds = ["full" if "stability/accuracy" in r["metrics"] else "subset" for r in recorder.records]
    assert kinds == ["subset", "subset", "full", "subset", "full"]  # start, epochs 0 .. 3
    unique, counts = drawn(120, 3)
    # per-sample statistics: the drawn samples were seen by all 5 checks, the others by the 2 full ones
    seen = monitor.sample_dynamics()
    assert seen.index.tolist() == list(range(N))
    assert seen.checks.tolist() == [5 if index in unique else 2 for index in range(N)]
    # the subset checks pass over the distinct drawn samples only, the full ones over all N; the fit-start probe
    # reads its PROBE_SIZE samples twice
    assert model.evaluated == 2 * PROBE_SIZE + 3 * len(unique) + 2 * N
    for record in recorder.records:
        if "stability/accuracy" in record["metrics"]:
            assert not any(key.startswith("stability_estimate/") for key in record["metrics"])
            continue
        assert not any(key.startswith("stability/") for key in record["metrics"])
        subset_model = MLP()
        subset_model.load_state_dict(record["state"])
        _, margins, _ = hand_margin_pass(subset_model, make_dataset(N), 256)
        correct = sum(c for i, c in zip(unique, counts, strict=True) if margins[i] > 0)
        metrics = record["metrics"]
        assert metrics["stability_estimate/accuracy"] == pytest.approx(correct / 120, abs=1e-12)
        expected_lower = 0.0 if correct == 0 else float(beta.ppf(0.05, correct, 120 - correct + 1))
        assert metrics["stability_estimate/accuracy_lower"] == pytest.approx(expected_lower, abs=1e-9)
        assert torch.equal(record["margins"], margins[unique])


def test_the_subset_pass_evaluates_only_the_distinct_drawn_samples() -> None:
    model = CountingMLP()
    monitor = StabilityMonitor(subset_size=50, grid=SMALL_GRID, check_at_start=False)
    fit([monitor], model, make_dataset(N), max_epochs=1)
    unique, _ = drawn(50, 0)
    assert model.evaluated == 2 * PROBE_SIZE + len(unique) < N
    assert monitor.last_pass.indices.tolist() == unique
    assert monitor.last_report is None and monitor.last_estimate is not None


def test_weights_steer_the_draw() -> None:
    weights = torch.zeros(N)
    weights[:10] = 1.0
    monitor = StabilityMonitor(subset_size=40, weights=weights, grid=SMALL_GRID, check_at_start=False)
    fit([monitor], data=make_dataset(N), max_epochs=1)
    assert monitor.last_pass.indices.tolist() == drawn(40, 0, weights.double())[0]
    assert int(monitor.last_pass.indices.max()) < 10


def test_a_resumed_run_evaluates_the_same_draws(tmp_path: Path) -> None:
    """The subset lives in the checkpoint: a resumed run with another ``subset_seed`` still uses the first draw."""
    first = StabilityMonitor(subset_size=60, subset_seed=1, grid=SMALL_GRID)
    fit([first, epoch_checkpoints(tmp_path)], data=make_dataset(N), max_epochs=1, enable_checkpointing=True)
    resumed = StabilityMonitor(subset_size=60, subset_seed=99, grid=SMALL_GRID)
    fit([resumed], data=make_dataset(N), max_epochs=2, ckpt_path=tmp_path / "epoch=0.ckpt", default_root_dir=tmp_path)
    assert resumed.last_pass.indices.tolist() == drawn(60, 1)[0] != drawn(60, 99)[0]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"subset_size": 0}, "`subset_size` must be a positive integer"),
        ({"subset_size": 10, "confidence": 1.0}, "`confidence` must lie in"),
        ({"subset_size": 10, "full_every_n_epochs": 0}, "`full_every_n_epochs` must be a positive integer"),
        ({"full_every_n_epochs": 2}, "only applies with `subset_size=`"),
        ({"subset_size": 10, "weights": "balanced"}, "pass the weights as a tensor"),
        ({"subset_size": 10, "dataloader": object()}, "needs `dataset=`"),
    ],
)
def test_bad_statistical_options_fail_at_once(options: dict, match: str) -> None:
    with pytest.raises(MisconfigurationError, match=match):
        StabilityMonitor(**options)


def test_weights_of_the_wrong_length_fail_at_the_draw() -> None:
    monitor = StabilityMonitor(subset_size=10, weights=torch.ones(N + 1), grid=SMALL_GRID)
    with pytest.raises(MisconfigurationError, match=f"`weights` has {N + 1} entries"):
        fit([monitor], data=make_dataset(N), max_epochs=1)


def test_the_monitor_logs_its_cost_per_check(csv_logger) -> None:
    monitor = StabilityMonitor(grid=SMALL_GRID)
    fit([monitor], data=make_dataset(N), max_epochs=2, logger=csv_logger)
    cost = monitor.last_cost
    parts = ("stability_cost/pass_seconds", "stability_cost/theory_seconds", "stability_cost/publish_seconds")
    assert set(cost) == {*parts, "stability_cost/total_seconds", "stability_cost/check_to_epoch"}
    assert all(value > 0 for value in cost.values())
    assert cost["stability_cost/total_seconds"] == pytest.approx(sum(cost[part] for part in parts), rel=1e-9)
    assert "stability_cost/pass_seconds" not in monitor.last_metrics  # the check's values stay comparable
    # logged after the rest of the check, at the check's step: the row after the check's own row
    rows = csv_rows(csv_logger.log_dir)
    checks = [i for i, row in enumerate(rows) if row.get("stability_diagnostics/check_epoch")]
    costs = [i for i, row in enumerate(rows) if row.get("stability_cost/total_seconds")]
    assert len(checks) == len(costs) == 3 and all(cost_row > check_row for check_row, cost_row in zip(checks, costs))
    assert [rows[i]["step"] for i in checks] == [rows[i]["step"] for i in costs]
    silent = StabilityMonitor(grid=SMALL_GRID, log_cost=False)
    fit([silent], data=make_dataset(N), max_epochs=1)
    assert silent.last_cost == {}


def test_a_subset_of_the_whole_set_is_a_subset_dataset_view() -> None:
    """``dataset=`` views work with the statistical mode (indices are the view's)."""
    view = Subset(make_dataset(N), list(range(100)))
    monitor = StabilityMonitor(subset_size=30, dataset=view, grid=SMALL_GRID, check_at_start=False)
    fit([monitor], data=make_dataset(N), max_epochs=1)
    assert int(monitor.last_pass.indices.max()) < 100


def test_two_processes_evaluate_the_same_draws_and_log_the_same_estimates(run_ddp) -> None:
    """Under DDP the drawn samples are sharded across the ranks and gathered: both ranks log identical values,
    equal to the hand-computed margins of the drawn samples at the weights each check saw."""
    from ..helpers import DDP_NUM_SAMPLES

    zero, one = run_ddp("subset")
    assert [r["hook"] for r in zero["records"]] == ["train_start", "epoch_end", "epoch_end"]
    for a, b in zip(zero["records"], one["records"], strict=True):
        assert a["metrics"] == b["metrics"] and torch.equal(a["margins"], b["margins"])
    assert zero["cost"] == one["cost"]  # rank zero's timings, broadcast
    draws = torch.multinomial(
        torch.ones(DDP_NUM_SAMPLES, dtype=torch.float64),
        150,
        replacement=True,
        generator=torch.Generator().manual_seed(5),
    )
    unique = sorted(set(draws.tolist()))
    for record in zero["records"]:
        model = MLP(lr=0.5)
        model.load_state_dict(record["state"])
        _, margins, _ = hand_margin_pass(model, make_dataset(DDP_NUM_SAMPLES), 256)
        if "stability_estimate/accuracy" in record["metrics"]:
            assert torch.equal(record["margins"], margins[unique])
            correct = sum(int(draws.eq(i).sum()) for i in unique if margins[i] > 0)
            assert record["metrics"]["stability_estimate/accuracy"] == pytest.approx(correct / 150, abs=1e-12)
        else:  # the full check of epoch 1
            assert torch.equal(record["margins"], margins)
