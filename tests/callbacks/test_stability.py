"""The monitor's numbers against independent oracles computed from the model's logits; TensorBoard output.

For every check a `Recorder` after the monitor keeps the weights the check saw; the test runs the model itself at
those weights (eval mode, no grad, the monitor's batch cuts) and computes every expected value from the logits with
callbacks/metric_oracles.py (exact Fractions / 50-digit mpmath for §1–§3 and §8; the Riemann bracket, the exact
``C_A`` and the exact ``κ_B`` of tests/theory/exact_oracles.py for the Theorem A/B floors), never with
``lightning_stability.theory``. Tolerances are those stated in metric_oracles.py.

The fixtures: `separable` data (labels from a noise-free linear rule), so that a few epochs reach a training loss
below log 2 and every floor is positive (not clipped to 0); and a `QuantizedMLP` whose logits lie on the lattice
(1/8)ℤ, so that margins tie at exactly 0 (an error, not a correct prediction: docs/theory.md §1) and the margin
distribution has atoms — the accuracy, masses, quantiles, flip masses and the Condition A/B oracles meet ties.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import TensorDataset

from lightning_stability import StabilityMonitor

from ..helpers import (
    MLP,
    NUM_CLASSES,
    SMALL_GRID,
    Recorder,
    RecordingLogger,
    fit,
    make_data,
    make_dataset,
    tensorboard_events,
)
from .metric_oracles import (
    CONSTANT_KEYS,
    OracleCheck,
    assert_metrics,
    balanced_mu,
    canonical,
    check_theorem_a,
    check_theorem_b,
    expected_sequence,
    logits_at,
    tensor_mu,
    uniform_mu,
)

pytestmark = [
    # RecordingLogger (tests/helpers.py) is not a logger that shows figures: the one warning that it gets the
    # scalars only; these tests read the recorded scalars
    pytest.mark.filterwarnings("ignore:lightning-stability\\x3a the logger RecordingLogger receives:UserWarning"),
]

N = 400
# docs/metrics.md: the Theorem A and B metrics
THEOREM_KEYS = {
    *(f"theorem_a/{k}" for k in ("floor", "eta", "eta0", "zeta", "gamma", "lam0", "condition_a_constant")),
    "theorem_a/envelope_bound",
    *(f"theorem_b/{k}" for k in ("floor", "eta", "eta0", "zeta", "dilation", "max_mass", "min_cluster_mass")),
    *(f"theorem_b/{k}" for k in ("min_width", "kappa_lower", "kappa_upper", "envelope_bound")),
}


def assert_names(metrics: dict, expected: dict) -> None:
    """A check logs exactly the expected values and the Theorem A/B ones, nothing else (constants may be logged
    once instead of with every check)."""
    assert set(canonical(metrics)) - CONSTANT_KEYS == (set(expected) | THEOREM_KEYS) - CONSTANT_KEYS


def stability_metrics(trainer, logger: RecordingLogger) -> dict:
    """What the last check sent: the headline values through `pl_module.log` (so in `trainer.callback_metrics`),
    the diagnostics straight to the logger at the same step (and never into `callback_metrics`)."""
    # the check's values; its cost (stability_cost/*: wall-clock seconds) is tested in test_check_cost.py and test_stability_subset.py
    headline = {k: float(v) for k, v in trainer.callback_metrics.items() if k.split("/")[0].startswith("stability")}
    groups = ("stability/", "stability_events/", "stability_margins/")
    assert headline and all(k.startswith(groups) for k in headline), sorted(headline)
    step = next(step for step, metrics in reversed(logger.calls) if "stability/accuracy" in metrics)  # the last check
    assert step is not None
    at_step = logger.at_step(step)
    assert {k: v for k, v in at_step.items() if k in headline} == headline, "the logger got the same values"
    diagnostics = {k: v for k, v in at_step.items() if k.startswith("stability_diagnostics/")}
    assert diagnostics
    return {**headline, **diagnostics}


def separable(num_samples: int) -> TensorDataset:
    """:func:`make_data`'s inputs with the noise-free labels ``argmax x[:3]``: learnable to a loss below log 2."""
    x, _ = make_data(num_samples)
    return TensorDataset(x, x[:, :NUM_CLASSES].argmax(dim=1))


class QuantizedMLP(MLP):
    """An MLP whose logits are rounded to (1/8)ℤ (exactly, in float32) with a straight-through gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        return logits + (torch.round(logits * 8) / 8 - logits).detach()


def oracle_checks(model, dataset, recorder: Recorder, batch_size: int, mu=None) -> list[OracleCheck]:
    """One `OracleCheck` per recorded check, from the logits at the weights that check saw."""
    x, y = dataset.tensors
    return [OracleCheck.of(logits_at(model, r["state"], x, batch_size), y, mu) for r in recorder.records]


def positive_floors(metrics: dict, keys=("loss_floor", "theorem_a/floor", "theorem_b/floor")) -> bool:
    return all(canonical(metrics)[key] > 0 for key in keys)


def exercised(metrics: dict) -> bool:
    """The fixture exercises unclipped Theorem 0 / A floors and a decaying ``U_B`` (Condition B certified)."""
    return (
        positive_floors(metrics, ("loss_floor", "theorem_a/floor")) and canonical(metrics)["theorem_b/kappa_lower"] > 1
    )


def test_metrics_equal_the_oracles_default_grid() -> None:
    """Default grid and quantiles, one check after 6 epochs: every logged number equals the oracles', the floors
    (positive) are bracketed and Theorem A's is the best of the grid.

    (`certify` with the default grid takes seconds on some margin sets: this is the one test that uses it.)
    """
    pl.seed_everything(4)
    dataset = separable(N)
    model = MLP(lr=0.5)
    monitor = StabilityMonitor(every_n_epochs=6, check_at_start=False)
    recorder = Recorder(monitor)
    logger = RecordingLogger()
    trainer = fit([monitor, recorder], model, dataset, max_epochs=6, logger=logger)

    assert monitor.checks_done == 1 and monitor.last_checked_epoch == 5 and len(recorder.records) == 1
    assert model.training, "the margin pass must restore train mode"
    state = recorder.records[0]["state"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items()), "no step after the last check"
    (check,) = oracle_checks(model, dataset, recorder, batch_size=256)  # the default: max(256, 4 × 32)
    assert torch.equal(monitor.last_pass.indices, torch.arange(N))
    assert torch.equal(monitor.last_pass.targets, dataset.tensors[1])
    assert monitor.last_pass.margins.tolist() == check.margins
    assert torch.allclose(monitor.last_pass.losses, torch.tensor(check.losses, dtype=torch.float64), rtol=0, atol=1e-12)

    (expected,) = expected_sequence([check], [5])
    assert_names(monitor.last_metrics, expected)  # first check: no flip masses
    assert_metrics(monitor.last_metrics, expected)
    assert positive_floors(monitor.last_metrics), "the fixture must exercise unclipped floors"
    check_theorem_a(monitor.last_metrics, check)
    check_theorem_b(monitor.last_metrics, check)
    # what went through `pl_module.log` and to the logger keeps full precision too
    assert stability_metrics(trainer, logger) == monitor.last_metrics


def test_flip_masses_events_and_saved_margin_files(tmp_path) -> None:
    """Start check + 2 epochs of a model with tied margins: every check's metrics, flip masses and events against
    the oracles of that check and the previous one; one .pt file per check."""
    pl.seed_everything(6)
    dataset = separable(N)
    model = QuantizedMLP(lr=0.5)
    monitor = StabilityMonitor(grid=SMALL_GRID, batch_size=100, save_margins=tmp_path / "margins")
    recorder = Recorder(monitor)
    with pytest.warns(UserWarning, match=r"StabilityMonitor: \d+ of \d+ margins are exactly 0"):  # quantized scores
        fit([monitor, recorder], model, dataset, max_epochs=2)

    checks = oracle_checks(model, dataset, recorder, batch_size=100)
    assert sum(d == 0 for d in checks[0].margins) >= 10, "ties at the start check"
    expected = expected_sequence(checks, [-1, 0, 1])
    assert [r["hook"] for r in recorder.records] == ["train_start", "epoch_end", "epoch_end"]
    for record, check, values in zip(recorder.records, checks, expected, strict=True):
        assert record["margins"].tolist() == check.margins
        assert_names(record["metrics"], values)
        assert_metrics(record["metrics"], values)
        check_theorem_a(record["metrics"], check, SMALL_GRID)
        check_theorem_b(record["metrics"], check, SMALL_GRID)
    assert "flip_forgotten" not in canonical(recorder.records[0]["metrics"])
    assert exercised(recorder.records[-1]["metrics"])
    # the model learns
    assert checks[2].loss < checks[1].loss < checks[0].loss

    files = sorted((tmp_path / "margins").glob("*.pt"))
    assert [f.name for f in files] == [
        "margins_epoch=0000_step=00000013.pt",
        "margins_epoch=0001_step=00000026.pt",
        "margins_epoch=start_step=00000000.pt",
    ]
    saved = [torch.load(f) for f in (files[2], files[0], files[1])]
    assert [s["epoch"] for s in saved] == [-1, 0, 1]
    for record, data, check in zip(recorder.records, saved, checks, strict=True):
        assert data["margins"].tolist() == check.margins
        assert torch.equal(data["targets"], dataset.tensors[1])
        assert torch.equal(data["indices"], torch.arange(N))
        assert data["num_classes"] == NUM_CLASSES
        report, logged = data["report"], canonical(record["metrics"])
        assert set(report) - set(logged) <= CONSTANT_KEYS
        assert {k: v for k, v in report.items() if k in logged} == {k: logged[k] for k in report if k in logged}


@pytest.mark.parametrize("kind", ["balanced", "tensor"])
def test_weights_equal_the_oracles_with_those_weights(kind: str) -> None:
    """Balanced and per-sample (integer, some zero) weights: every metric is the weighted one (start check with
    ties, then a check after 3 epochs with positive floors)."""
    pl.seed_everything(3)
    dataset = separable(N)
    x, targets = dataset.tensors
    model = QuantizedMLP(lr=0.5)
    if kind == "balanced":
        weights_arg = "balanced"
        mu = balanced_mu(targets.tolist())
    else:
        weights_arg = torch.randint(0, 4, (N,), generator=torch.Generator().manual_seed(5)).double()
        weights_arg[:20] = 0.0  # samples of weight zero carry no mass
        # ... not even the smallest margin at the start check: `margin_min` is over the positive-weight samples
        start = OracleCheck.of(logits_at(model, None, x, 256), targets).margins
        weights_arg[torch.tensor(start) == min(start)] = 0.0
        mu = tensor_mu(weights_arg)
    monitor = StabilityMonitor(grid=SMALL_GRID, weights=weights_arg, quantiles=(0.1, 0.5), every_n_epochs=3)
    recorder = Recorder(monitor)
    logger = RecordingLogger()
    with pytest.warns(UserWarning, match=r"StabilityMonitor: \d+ of \d+ margins are exactly 0"):  # the start ties
        trainer = fit([monitor, recorder], model, dataset, max_epochs=3, logger=logger)

    checks = oracle_checks(model, dataset, recorder, batch_size=256, mu=mu)
    assert sum(d == 0 for d in checks[0].margins) >= 10, "ties at the start check"
    if kind == "tensor":
        assert checks[0].minimum > min(checks[0].margins), "the smallest margin has weight zero"
    expected = expected_sequence(checks, [-1, 2], quantiles=(0.1, 0.5))
    for record, check, values in zip(recorder.records, checks, expected, strict=True):
        assert_metrics(record["metrics"], values)
        check_theorem_a(record["metrics"], check, SMALL_GRID)
        check_theorem_b(record["metrics"], check, SMALL_GRID)
    assert exercised(recorder.records[-1]["metrics"])
    assert_metrics(stability_metrics(trainer, logger), expected[-1])
    # the weights were really used: the uniform oracle's accuracy differs, and its metrics are not what was logged
    for record, check in zip(recorder.records, checks, strict=True):
        uniform = OracleCheck(**{**check.__dict__, "mu": uniform_mu(N)})
        assert abs(float(uniform.accuracy) - float(check.accuracy)) > 1e-4
        with pytest.raises(AssertionError, match="differ"):
            assert_metrics(record["metrics"], uniform.metrics(canonical(record["metrics"])["check_epoch"], (0.1, 0.5)))


def test_tensorboard_events_contain_scalars_histogram_and_figure(tb_logger) -> None:
    pl.seed_everything(3)
    dataset = make_dataset(N)
    model = MLP()
    monitor = StabilityMonitor(grid=SMALL_GRID, log_figure=True)
    recorder = Recorder(monitor)
    fit([monitor, recorder], model, dataset, max_epochs=2, logger=tb_logger)

    events = tensorboard_events(tb_logger.log_dir)
    tags = events.Tags()
    missing = set(monitor.last_metrics) - set(tags["scalars"])
    assert not missing, f"scalars missing from the TensorBoard events: {sorted(missing)}"
    accuracy = events.Scalars("stability/accuracy")
    assert len(accuracy) == 3  # start check + 2 epochs
    assert [e.value for e in accuracy] == pytest.approx(
        [r["metrics"]["stability/accuracy"] for r in recorder.records], abs=1e-6
    )
    assert accuracy[0].step == 0
    for name, value in monitor.last_metrics.items():
        assert events.Scalars(name)[-1].value == pytest.approx(value, rel=1e-6, abs=1e-6), name

    assert "stability/margins" in tags["histograms"]
    histograms = events.Histograms("stability/margins")
    assert len(histograms) == 3
    assert [h.step for h in histograms] == [e.step for e in accuracy]
    for event, record in zip(histograms, recorder.records, strict=True):
        value, margins = event.histogram_value, record["margins"]
        assert value.num == N
        assert value.min == pytest.approx(float(margins.min()))
        assert value.max == pytest.approx(float(margins.max()))
        assert value.sum == pytest.approx(float(margins.sum()), abs=1e-6)
    assert "stability/envelopes" in tags["images"]
    assert len(events.Images("stability/envelopes")) == 3


def test_the_hyperparameters_hold_no_lightning_cli_internals(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI adds ``_class_path`` and ``_instantiator`` to a module's hyperparameters; the monitor's HParams
    summary (declared at fit start) keeps the model's own and its settings, not those."""
    from lightning_stability.callbacks import publish as publish_module

    declared: list[dict] = []
    monkeypatch.setattr(publish_module, "declare_final", lambda trainer, params, names: declared.append(params))

    class CLIModule(MLP):
        def __init__(self, width: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters({"width": width, "_class_path": "x.CLIModule", "_instantiator": "y"})

    fit([StabilityMonitor(grid=SMALL_GRID)], CLIModule(), max_epochs=1)
    (params,) = declared
    assert params == {
        "width": 8,
        "stability/every_n_epochs": 1,
        "stability/tol": 0.0,
        "stability/weights": "sampler or uniform",
    }
