"""2-process CPU DDP (gloo), one run for all three monitors: every rank logs the same values, equal to 1 process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_stability.dynamics import HessianVectorProduct, parametrization_statistics, top_hessian_eigenvalue

from .ddp_script import DDP_NUM_SAMPLES
from .helpers import MLP, explicit_hessian, make_dataset, subset_tensors

SCRIPT = Path(__file__).with_name("ddp_script.py")
REPO = Path(__file__).resolve().parents[2]


def test_ddp_two_processes_log_the_same_values(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("MASTER_PORT", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"DDP run failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    zero, one = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert (zero["rank"], one["rank"]) == (0, 1)

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

    # equal to one process on the final weights: λ_max (same algorithm, and the explicit Hessian to 1 %) …
    model = MLP(hidden=12, dropout=0.2)
    model.load_state_dict(zero["final_state"])
    model.eval()
    inputs, targets = subset_tensors(make_dataset(DDP_NUM_SAMPLES), zero["indices"])
    operator = HessianVectorProduct(
        list(model.parameters()), [lambda: nn.functional.cross_entropy(model(inputs), targets)]
    )
    single = top_hessian_eigenvalue(operator, operator.dim)
    logged = zero["records"]["SharpnessMonitor"][-1]["stability/sharpness/lambda_max"]
    assert logged == pytest.approx(single.value, rel=1e-5)
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
