"""2-process CPU DDP (gloo), run by ``ddp_script.py``: every rank ends with the same values, equal to 1 process.

* the StabilityMonitor: every rank gathers the same margins and report over the whole training set, and keeps the
  same per-sample dynamics; ``samples.csv`` is byte-for-byte the one of a single process that checks the same
  weights;
* the three dynamics monitors, in one run: every rank logs the same values, those of one process.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from lightning_stability import StabilityMonitor
from lightning_stability.dynamics import HessianVectorProduct, parametrization_statistics, top_hessian_eigenvalue
from tests.theory.oracles import naive_flip_masses

from ..helpers import (
    DDP_MARGIN_BATCH_SIZE,
    DDP_NUM_SAMPLES,
    MLP,
    SMALL_GRID,
    Recorder,
    explicit_hessian,
    fit,
    hand_margin_pass,
    make_dataset,
    subset_tensors,
)

# differ between two checks of the same weights only through the previous check
RELATIVE = (
    "stability_events/flip_forgotten",
    "stability_events/flip_learned",
    "stability_events/instability",
    "stability_events/loss_rose",
    "stability_events/stable_checks",  # counts the checks before this one
)


class LoadWeights(pl.Callback):
    """Before the monitor's check of epoch 0: load ``state`` (with lr = 0 the check sees exactly these weights)."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pl_module.load_state_dict(self.state)


def single_process_samples_csv(initial: dict, final: dict, directory) -> bytes:
    """samples.csv of a 1-process run whose check before training sees ``initial`` and whose epoch-0 check ``final``."""
    model = MLP(lr=0.0)
    model.load_state_dict(initial)
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=DDP_MARGIN_BATCH_SIZE, save_margins=directory)
    fit([LoadWeights(final), monitor], model, DDP_NUM_SAMPLES, batch_size=16, max_epochs=1)
    return (directory / "samples.csv").read_bytes()


def single_process_records(state: dict) -> list[dict]:
    """A 1-process run with the given weights and lr = 0: its start and epoch checks see exactly those weights."""
    model = MLP(lr=0.0)
    model.load_state_dict(state)
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=DDP_MARGIN_BATCH_SIZE)
    recorder = Recorder(monitor)
    fit([monitor, recorder], model, DDP_NUM_SAMPLES, batch_size=16, max_epochs=1)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items()), "lr = 0 must keep the weights"
    return recorder.records


def without(metrics: dict[str, float], keys=RELATIVE + ("stability_diagnostics/check_epoch",)) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in keys}


def test_ddp_two_processes_gather_the_whole_training_set(run_ddp, tmp_path) -> None:
    zero, one = run_ddp("stability")

    # the same report on every rank, covering every sample once (rank 1's padding duplicate removed)
    for key in ("indices", "targets", "margins", "losses", "predicted"):
        assert torch.equal(zero["last_pass"][key], one["last_pass"][key]), key
    assert torch.equal(zero["last_pass"]["indices"], torch.arange(DDP_NUM_SAMPLES))
    assert zero["report"] == one["report"]
    assert zero["report"]["num_samples"] == DDP_NUM_SAMPLES
    assert [r["hook"] for r in zero["records"]] == ["train_start", "epoch_end"]
    for a, b in zip(zero["records"], one["records"], strict=True):
        assert a["metrics"] == b["metrics"]
        assert torch.equal(a["margins"], b["margins"])
    assert zero["monitor_state"]["checks_done"] == one["monitor_state"]["checks_done"] == 2
    # the same per-sample dynamics on both ranks, one row per sample; samples.csv (rank zero) equals one process's
    for name, column in zero["samples"].items():
        assert torch.equal(column, one["samples"][name]), name
    assert zero["samples"]["index"].tolist() == list(range(DDP_NUM_SAMPLES))
    assert zero["samples"]["checks"].tolist() == [2] * DDP_NUM_SAMPLES
    ddp_csv = (tmp_path / "margins" / "samples.csv").read_bytes()
    assert ddp_csv.count(b"\n") == DDP_NUM_SAMPLES + 1
    single = single_process_samples_csv(zero["initial_state"], zero["final_state"], tmp_path / "single")
    assert ddp_csv == single
    assert zero["should_stop"] == one["should_stop"] is False
    # DDP kept the replicas identical and training moved the weights
    assert all(torch.equal(v, one["final_state"][k]) for k, v in zero["final_state"].items())
    assert not all(torch.equal(v, zero["initial_state"][k]) for k, v in zero["final_state"].items())

    # equal to a 1-process run on the same data and weights
    dataset = make_dataset(DDP_NUM_SAMPLES)
    for ddp_record, state in ((zero["records"][0], zero["initial_state"]), (zero["records"][1], zero["final_state"])):
        model = MLP()
        model.load_state_dict(state)
        _, margins, _ = hand_margin_pass(model, dataset, DDP_MARGIN_BATCH_SIZE)
        assert torch.equal(ddp_record["margins"], margins)
    start, end = single_process_records(zero["initial_state"]), single_process_records(zero["final_state"])
    assert torch.equal(start[0]["margins"], zero["records"][0]["margins"])
    assert start[0]["metrics"] == zero["records"][0]["metrics"]
    for single in (end[0], end[1]):
        assert torch.equal(single["margins"], zero["records"][1]["margins"])
        assert without(single["metrics"]) == without(zero["records"][1]["metrics"])
    # docs/theory.md §8 by hand (exact Fractions): forgotten μ{δ' > 0 ≥ δ}, learned μ{δ' ≤ 0 < δ}
    forgotten, learned = naive_flip_masses(zero["records"][0]["margins"], zero["records"][1]["margins"])
    assert zero["records"][1]["metrics"]["stability_events/flip_forgotten"] == pytest.approx(
        forgotten, rel=1e-12, abs=1e-15
    )
    assert zero["records"][1]["metrics"]["stability_events/flip_learned"] == pytest.approx(
        learned, rel=1e-12, abs=1e-15
    )


def test_ddp_two_processes_log_the_same_values(run_ddp) -> None:
    zero, one = run_ddp("dynamics")

    # the same checks, values and counters on both ranks, computed independently before the broadcast too
    assert zero["records"] == one["records"]
    assert [len(zero["records"][name]) for name in ("SharpnessMonitor", "ParametrizationMonitor")] == [2, 2]
    steps_per_epoch = -(-DDP_NUM_SAMPLES // 2 // 16)  # 151 samples per rank in batches of 16: 10 steps
    assert len(zero["records"]["GradientFlowMonitor"]) == steps_per_epoch  # steps 0, 2, …, 18 of 20
    assert zero["own_lambda_max"] == one["own_lambda_max"]
    assert zero["own_parametrization"] == one["own_parametrization"]
    for name, state in zero["states"].items():
        for key, value in state.items():
            other = one["states"][name][key]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other, (name, key)
    assert all(torch.equal(v, one["final_state"][k]) for k, v in zero["final_state"].items())
    assert not torch.equal(zero["final_state"]["net.0.weight"], zero["initial_state"]["net.0.weight"])

    # equal to one process on the final weights: λ_max (a converged Lanczos, and the explicit Hessian to 1 %) …
    model = MLP(hidden=12, dropout=0.2)
    model.load_state_dict(zero["final_state"])
    model.eval()
    inputs, targets = subset_tensors(make_dataset(DDP_NUM_SAMPLES), zero["indices"])
    operator = HessianVectorProduct(
        list(model.parameters()), [lambda: nn.functional.cross_entropy(model(inputs), targets)]
    )
    single = top_hessian_eigenvalue(operator, operator.dim, method="lanczos", tol=1e-6, max_iter=operator.dim)
    logged = zero["records"]["SharpnessMonitor"][-1]["stability/sharpness/lambda_max"]
    # the monitor's Lanczos stops at a relative residual of 1e-3 (warm-started from its previous check): its
    # eigenvalue is within that of a converged one
    assert logged == pytest.approx(single.value, rel=2e-3)
    explicit = float(torch.linalg.eigvalsh(explicit_hessian(model, inputs, targets).double())[-1])
    assert logged == pytest.approx(explicit, rel=0.01)
    # … and the parametrization statistics on the same probe samples
    permutation = torch.randperm(DDP_NUM_SAMPLES, generator=torch.Generator().manual_seed(0))  # seed 0, 96 samples
    probe = subset_tensors(make_dataset(DDP_NUM_SAMPLES), torch.sort(permutation[:96]).values)[0]
    with torch.no_grad():
        stats = parametrization_statistics(
            model.net[0].weight, model.net[0].bias, model.net[-1].weight, model.net[0](probe), "relu"
        )
    logged_stats = zero["records"]["ParametrizationMonitor"][-1]
    assert logged_stats == pytest.approx(stats.to_metrics("stability/parametrization/layer0"), nan_ok=True)


def test_ddp_follows_a_weighted_sampler_behind_lightnings_wrapper(run_ddp) -> None:
    """Lightning wraps the WeightedRandomSampler for DDP; the monitor still certifies the sampler-weighted loss."""
    from .ddp_script import SAMPLER_WEIGHTS

    zero, one = run_ddp("sampler")
    assert zero["sampler_class"] == "DistributedSamplerWrapper"
    assert zero["weights_source"] == one["weights_source"] == "sampler"
    assert zero["metrics"] == one["metrics"]
    model = MLP()
    model.load_state_dict(zero["final_state"])
    _, margins, losses = hand_margin_pass(model, make_dataset(DDP_NUM_SAMPLES), DDP_MARGIN_BATCH_SIZE)
    mu = SAMPLER_WEIGHTS / SAMPLER_WEIGHTS.sum()
    assert zero["metrics"]["stability/loss"] == pytest.approx(float((mu * losses).sum()), rel=1e-9)
    assert zero["metrics"]["stability/accuracy"] == pytest.approx(float(mu[margins > 0].sum()), rel=1e-12)
