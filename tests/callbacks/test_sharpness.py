"""SharpnessMonitor in a real Trainer: λ_max of the explicit Hessian, lr · λ_max / 2, stopping, bad input."""

from __future__ import annotations

import importlib
import math
import random
from copy import deepcopy

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.autograd.function import once_differentiable
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import Dataset

from lightning_stability import SharpnessMonitor
from lightning_stability.callbacks.sharpness_loss import BINARY_LOSS_EXAMPLE, cross_entropy_loss

from .. import helpers
from ..helpers import (
    MLP,
    DictDataset,
    DictMLP,
    FrozenMLP,
    MonitorRecorder,
    Stream,
    csv_rows,
    explicit_hessian,
    make_dataset,
    make_loader,
    subset_tensors,
    trainer_kwargs,
)

N = 200


def fit(monitor: SharpnessMonitor, model: pl.LightningModule, max_epochs: int = 2) -> tuple[pl.Trainer, list[dict]]:
    """Fit on N shuffled samples with the monitor; returns the trainer and the metrics of each of its checks."""
    recorder = MonitorRecorder(monitor)
    trainer = helpers.fit([monitor, recorder], model, N, batch_size=25, shuffle=True, max_epochs=max_epochs)
    return trainer, recorder.records["SharpnessMonitor"]


@pytest.mark.parametrize("method", ["power", "lanczos"])
def test_lambda_max_equals_the_explicit_hessian_top_eigenvalue(method: str) -> None:
    pl.seed_everything(0)
    model = MLP(hidden=8, dropout=0.3)  # dropout: the monitor must evaluate in eval mode
    monitor = SharpnessMonitor(num_samples=150, method=method)
    fit(monitor, model)
    assert monitor.indices.numel() == 150 and monitor.indices.unique().numel() == 150
    inputs, targets = subset_tensors(make_dataset(N), monitor.indices)
    expected = float(torch.linalg.eigvalsh(explicit_hessian(model, inputs, targets).double())[-1])
    assert monitor.last_metrics["stability/sharpness/lambda_max"] == pytest.approx(expected, rel=0.01)
    assert monitor.last_metrics["stability/sharpness/lr"] == 0.2
    assert monitor.last_metrics["stability/sharpness/lr_lambda_over_2"] == pytest.approx(0.2 * expected / 2, rel=0.01)
    assert monitor.checks_done == 2 and monitor.last_checked_epoch == 1


def test_chunked_loss_gives_the_same_lambda_max() -> None:
    values = []
    for batch_size in (None, 40):
        pl.seed_everything(0)
        model = MLP(hidden=8)
        monitor = SharpnessMonitor(num_samples=120, batch_size=batch_size, tol=1e-6, max_iter=500)
        fit(monitor, model, max_epochs=1)
        values.append(monitor.last_metrics["stability/sharpness/lambda_max"])
    assert values[0] == pytest.approx(values[1], rel=1e-4)


@pytest.fixture(scope="module")
def frozen_lambda() -> float:
    """λ_max of FrozenMLP's (seeded, never moving) weights on the monitor's subset (computed once per module)."""
    pl.seed_everything(0)
    model = FrozenMLP(lr=0.0)
    monitor = SharpnessMonitor(num_samples=100)
    fit(monitor, model, max_epochs=1)
    return monitor.last_metrics["stability/sharpness/lambda_max"]


def test_lr_lambda_over_2_reacts_to_the_learning_rate(frozen_lambda: float) -> None:
    lam = frozen_lambda
    assert lam > 0
    ratios = {}
    for lr in (1.0 / lam, 3.0 / lam):  # lr·λ/2 = 0.5 (stable) and 1.5 (unstable)
        pl.seed_everything(0)
        monitor = SharpnessMonitor(num_samples=100)
        fit(monitor, FrozenMLP(lr=lr), max_epochs=2)
        assert monitor.last_metrics["stability/sharpness/lambda_max"] == pytest.approx(lam, rel=1e-6)
        assert monitor.last_metrics["stability/sharpness/lr"] == pytest.approx(lr)
        ratios[lr] = monitor.last_metrics["stability/sharpness/lr_lambda_over_2"]
        assert monitor.last_metrics["stability/sharpness/unstable"] == float(ratios[lr] > 1)
        assert monitor.unstable_count == (2 if ratios[lr] > 1 else 0)
    assert list(ratios.values()) == pytest.approx([0.5, 1.5], rel=1e-5)


def test_stop_after_patience_consecutive_unstable_checks(frozen_lambda: float) -> None:
    lam = frozen_lambda
    # Lightning steps epoch-interval schedulers before `on_train_epoch_end`: the check of epoch e sees the lr of
    # epoch e + 1, factors[e + 1]. lr·λ/2 at the checks: 1.5, 0.5, 1.5, 1.5, 1.5 → the unstable streak restarts
    # after epoch 1 and patience 2 stops at epoch 3.
    factors = [1.0, 1.0, 1 / 3, 1.0, 1.0, 1.0]
    pl.seed_everything(0)
    model = FrozenMLP(lr=3.0 / lam, lr_factors=factors)
    monitor = SharpnessMonitor(num_samples=100, stop_on_unstable=True, patience=2)
    trainer, records = fit(monitor, model, max_epochs=5)
    ratios = [r["stability/sharpness/lr_lambda_over_2"] for r in records]
    assert ratios == pytest.approx([1.5, 0.5, 1.5, 1.5], rel=1e-5)
    consecutive = [r["stability/sharpness/consecutive_unstable"] for r in records]
    assert consecutive == [1, 0, 1, 2]
    assert trainer.should_stop and trainer.current_epoch == 4 and monitor.checks_done == 4
    assert "edge ratio λ_max(P^-1/2 H P^-1/2)/T = 1.5 > 1.2 while the loss did not fall" in monitor.stop_reason
    assert "patience 2" in monitor.stop_reason
    assert "2 consecutive check(s) up to epoch 3" in monitor.stop_reason
    # the same schedule without stop_on_unstable runs to the end
    pl.seed_everything(0)
    quiet = SharpnessMonitor(num_samples=100, patience=2)
    fit(quiet, FrozenMLP(lr=3.0 / lam, lr_factors=factors), max_epochs=5)
    assert quiet.checks_done == 5 and quiet.stop_reason is None and quiet.consecutive_unstable == 3


def test_every_n_epochs() -> None:
    pl.seed_everything(0)
    monitor = SharpnessMonitor(every_n_epochs=2, num_samples=50)
    _, records = fit(monitor, MLP(hidden=8), max_epochs=5)
    assert monitor.checks_done == 2 and monitor.last_checked_epoch == 3
    assert len(records) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(every_n_epochs=0), "`every_n_epochs` must be a positive integer"),
        (dict(num_samples=0), "`num_samples` must be a positive integer"),
        (dict(patience=0), "`patience` must be a positive integer"),
        (dict(batch_size=-1), "`batch_size` must be a positive integer"),
        (dict(method="qr"), "`method` must be 'power' or 'lanczos'"),
        (dict(tol=1.5), r"`tol` must be a relative tolerance in \(0, 1\)"),
        (dict(max_iter=1), "`max_iter` must be an integer >= 2"),
        (dict(loss_fn="cross_entropy"), r"`loss_fn` must be callable as loss_fn\(pl_module, batch\)"),
        (dict(seed=0.5), "`seed` must be an integer"),
    ],
)
def test_bad_arguments(kwargs, message) -> None:
    with pytest.raises(MisconfigurationException, match=message):
        SharpnessMonitor(**kwargs)


def test_batches_the_default_loss_cannot_read_say_what_to_pass() -> None:
    loader = make_loader(DictDataset(60), batch_size=20)
    monitor = SharpnessMonitor(num_samples=20)
    with pytest.raises(MisconfigurationException, match=r"expects `\(x, y\)` batches, got dict. Pass `loss_fn="):
        helpers.fit([monitor], DictMLP(), loader, max_epochs=1)
    # ... and what the message suggests works
    monitor = SharpnessMonitor(
        num_samples=20, loss_fn=lambda module, batch: nn.functional.cross_entropy(module(batch["x"]), batch["y"])
    )
    helpers.fit([monitor], DictMLP(), loader, max_epochs=1)
    assert monitor.checks_done == 1 and monitor.last_metrics["stability/sharpness/lambda_max"] > 0


def test_a_non_finite_loss_fails_with_the_epoch() -> None:
    loss_fn = lambda module, batch: nn.functional.cross_entropy(module(batch[0]), batch[1]) * float("nan")
    with pytest.raises(ValueError, match=r"SharpnessMonitor at epoch 0: the loss is nan \(not finite\)"):
        fit(SharpnessMonitor(num_samples=20, loss_fn=loss_fn), MLP(), max_epochs=1)


def test_an_iterable_training_set_needs_dataset() -> None:
    stream = make_loader(Stream(make_dataset(40)), batch_size=20)
    with pytest.raises(MisconfigurationException, match=r"needs a map-style dataset .* Pass `dataset=`"):
        helpers.fit([SharpnessMonitor(num_samples=20)], MLP(), stream, max_epochs=1)
    monitor = SharpnessMonitor(num_samples=20, dataset=make_dataset(40))
    helpers.fit([monitor], MLP(), stream, max_epochs=1)
    assert monitor.checks_done == 1


# ---------------------------------------------------------------------------------------------------- one logit


class OneLogit(pl.LightningModule):
    """``nn.Linear(4, 1)`` trained with ``BCEWithLogitsLoss``: logits ``[B, 1]``, or ``[B]`` with ``squeeze``."""

    def __init__(self, squeeze: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.squeeze = squeeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.linear(x)
        return logits.squeeze(-1) if self.squeeze else logits

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.BCEWithLogitsLoss()(self(x).reshape(-1), y.float())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


def binary_data(labels: torch.Tensor | None = None, n: int = 64) -> torch.utils.data.TensorDataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=generator)
    y = (x[:, 0] + 0.5 * torch.randn(n, generator=generator) > 0).float() if labels is None else labels
    return torch.utils.data.TensorDataset(x, y)


@pytest.mark.parametrize(
    ("squeeze", "dtype"),
    [(False, torch.float32), (True, torch.long), (False, torch.bool)],
    ids=["[B,1]", "[B]", "bool"],
)
def test_a_one_logit_model_gets_binary_cross_entropy(squeeze: bool, dtype: torch.dtype) -> None:
    pl.seed_everything(0)
    model, data = OneLogit(squeeze), binary_data()
    monitor = SharpnessMonitor(num_samples=48, tol=1e-6, max_iter=200)
    labels = data.tensors[1].to(dtype)
    trainer = pl.Trainer(**trainer_kwargs(callbacks=[monitor], max_epochs=1))
    trainer.fit(model, make_loader(torch.utils.data.TensorDataset(data.tensors[0], labels), batch_size=16))
    assert monitor.checks_done == 1
    x, y = data.tensors[0][monitor.indices].double(), data.tensors[1][monitor.indices].double()
    features = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)  # [x, 1]: weight and bias
    theta = torch.cat([model.linear.weight.detach().reshape(-1), model.linear.bias.detach()]).double()
    z = features @ theta
    # by hand: L = mean(softplus(z) − y z); its Hessian in (w, b) is mean(σ(z)(1 − σ(z)) [x, 1][x, 1]ᵀ)
    loss = nn.functional.softplus(z).sub(y * z).mean()
    assert cross_entropy_loss(model, (data.tensors[0][monitor.indices], labels[monitor.indices])).item() == (
        pytest.approx(loss.item(), rel=1e-5)
    )
    curvature = torch.sigmoid(z) * (1 - torch.sigmoid(z))
    hessian = (features * curvature[:, None]).T @ features / len(z)
    expected = float(torch.linalg.eigvalsh(hessian)[-1])
    assert monitor.last_metrics["stability/sharpness/lambda_max"] == pytest.approx(expected, rel=1e-4)
    assert monitor.last_metrics["stability/sharpness/lr_lambda_over_2"] == pytest.approx(0.5 * expected / 2, rel=1e-4)


def test_one_logit_labels_not_0_or_1_are_refused_before_training() -> None:
    pl.seed_everything(0)
    monitor = SharpnessMonitor(num_samples=16)
    trainer = pl.Trainer(**trainer_kwargs(callbacks=[monitor], max_epochs=1))
    soft = binary_data(torch.full((64,), 0.3))  # BCEWithLogitsLoss trains on them; the default loss must not guess
    message = r"binary cross entropy with labels 0 or 1, but the batch has labels such as 0\.3\. Pass .*`loss_fn="
    with pytest.raises(MisconfigurationException, match=message) as raised:
        trainer.fit(OneLogit(), make_loader(soft, batch_size=16))
    assert trainer.global_step == 0 and monitor.checks_done == 0
    # ... and the loss the message suggests, as written in it, works
    assert BINARY_LOSS_EXAMPLE in str(raised.value)
    suggested = eval(BINARY_LOSS_EXAMPLE.removeprefix("loss_fn="), {"torch": torch})
    monitor = SharpnessMonitor(num_samples=16, loss_fn=suggested)
    pl.Trainer(**trainer_kwargs(callbacks=[monitor], max_epochs=1)).fit(OneLogit(), make_loader(soft, batch_size=16))
    assert monitor.checks_done == 1 and monitor.last_metrics["stability/sharpness/lambda_max"] > 0


class TwoLogits(OneLogit):
    """Two class scores, trained on float 0/1 labels of the first: labels the cross entropy cannot read."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.BCEWithLogitsLoss()(self(x)[:, 0], y)


def test_any_error_of_the_default_loss_names_loss_fn_before_training() -> None:
    pl.seed_everything(0)
    monitor = SharpnessMonitor(num_samples=16)
    trainer = pl.Trainer(**trainer_kwargs(callbacks=[monitor], max_epochs=1))
    message = (
        r"^SharpnessMonitor: the default loss \(cross entropy .*\) fails on one training sample: RuntimeError: .*"
        r"Pass the loss you train with as `loss_fn=`, e\.g\. `loss_fn=lambda module, batch: torch\.nn\.functional"
        r"\.cross_entropy\(module\(batch\[0\]\), batch\[1\]\)`"
    )
    with pytest.raises(MisconfigurationException, match=message) as raised:
        trainer.fit(TwoLogits(), make_loader(binary_data(), batch_size=16))
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert trainer.global_step == 0 and monitor.checks_done == 0


# ---------------------------------------------------------------------------------------------------- attention, dict batches


@pytest.fixture(params=["pytorch_lightning", "lightning.pytorch"])
def distribution(request: pytest.FixtureRequest):
    """Each installed Lightning distribution's package."""
    return pytest.importorskip(request.param)


VOCABULARY, LENGTH, CLASSES, TOKEN_SAMPLES = 20, 8, 3, 48


class Tokens(Dataset):
    """``TOKEN_SAMPLES`` random token sequences with random labels, as ``{"input_ids", "labels"}`` dicts."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.input_ids = torch.randint(0, VOCABULARY, (TOKEN_SAMPLES, LENGTH), generator=generator)
        self.labels = torch.randint(0, CLASSES, (TOKEN_SAMPLES,), generator=generator)

    def __len__(self) -> int:
        return TOKEN_SAMPLES

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}


def text_classifier(distribution) -> nn.Module:
    """Embedding → one TransformerEncoder layer (d_model 16, 2 heads, dropout) → mean over tokens → 3 classes."""

    class TextClassifier(distribution.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCABULARY, 16)
            layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.1, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.head = nn.Linear(16, CLASSES)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(self.embed(input_ids)).mean(dim=1))

        def training_step(self, batch, batch_idx):
            return token_loss(self, batch)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return TextClassifier()


def token_loss(module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return nn.functional.cross_entropy(module(batch["input_ids"]), batch["labels"])


def fit_tokens(distribution, monitor: SharpnessMonitor, model: nn.Module, root, max_epochs: int = 2):
    logger = importlib.import_module(f"{distribution.__name__}.loggers").CSVLogger(root, name="csv", version=0)
    trainer = distribution.Trainer(**trainer_kwargs(callbacks=[monitor], max_epochs=max_epochs, logger=logger))
    trainer.fit(model, make_loader(Tokens(), batch_size=16, shuffle=True))
    return trainer, logger.log_dir


def test_a_transformer_text_classifier_on_dict_batches(distribution, tmp_path, monkeypatch) -> None:
    def fast_path(*args, **kwargs):
        raise AssertionError("nn.TransformerEncoderLayer's fast path (no autograd) was taken")

    monkeypatch.setattr(torch, "_transformer_encoder_layer_fwd", fast_path)
    pl.seed_everything(0)
    model = text_classifier(distribution)
    monitor = SharpnessMonitor(num_samples=TOKEN_SAMPLES, loss_fn=token_loss, tol=1e-6, max_iter=500)
    trainer, log_dir = fit_tokens(distribution, monitor, model, tmp_path)
    assert monitor.checks_done == 2 and trainer.current_epoch == 2
    rows = csv_rows(log_dir, "stability/sharpness/lambda_max")
    assert len(rows) == 2
    for row in rows:
        values = {name: float(value) for name, value in row.items() if name.startswith("stability/sharpness/")}
        names = {"lambda_max", "lr", "lr_lambda_over_2", "loss", "hvp_count", "converged", "gap", "edge_ratio"}
        names |= {"unstable", "consecutive_unstable"}
        assert set(values) == {f"stability/sharpness/{name}" for name in names}
        assert all(math.isfinite(value) for value in values.values())
    assert float(rows[-1]["stability/sharpness/lambda_max"]) == monitor.last_metrics["stability/sharpness/lambda_max"]
    assert monitor.last_metrics["stability/sharpness/converged"] == 1.0
    # independently: power iteration with forward-over-reverse products (torch.func.jvp of torch.func.grad; the
    # monitor differentiates reverse-over-reverse) on a float64 copy, at the final weights (the last check ran after
    # the last step), on all 48 samples (the subset is all of them), in eval mode
    expected, residual = reference_lambda_max(model, Tokens())
    assert residual <= 1e-3 and model.training
    # rel 1e-3: some eigenvalue lies within ‖H v − ρ v‖ <= 1e-3 ρ of the reference ρ (symmetric H), and it is λ_max
    # since power iteration converged to a positive dominant one; the monitor's own error (relative changes
    # <= 1e-6, float32 products) is far smaller: against torch.func.hessian's full 2595 × 2595 Hessian it was 1.1e-6
    assert monitor.last_metrics["stability/sharpness/lambda_max"] == pytest.approx(expected, rel=1e-3)


def reference_lambda_max(model: nn.Module, data: Tokens, iterations: int = 500) -> tuple[float, float]:
    """``(ρ, ‖H v − ρ v‖ / ρ)`` of power iteration on the Hessian of the mean loss of ``data`` (float64 copy)."""
    copy = deepcopy(model).double().eval()
    named = [(name, p.detach()) for name, p in copy.named_parameters()]
    flat = torch.cat([p.reshape(-1) for _, p in named])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for name, p in named:
            params[name] = vector[start : start + p.numel()].reshape(p.shape)
            start += p.numel()
        return nn.functional.cross_entropy(functional_call(copy, params, (data.input_ids,)), data.labels)

    vector = torch.randn(flat.numel(), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    vector /= vector.norm()
    with sdpa_kernel(SDPBackend.MATH):
        for _ in range(iterations):
            product = torch.func.jvp(torch.func.grad(loss), (flat,), (vector,))[1]
            rho = float(vector @ product)
            residual = float((product - rho * vector).norm()) / abs(rho)
            if residual <= 1e-3:
                break
            vector = product / product.norm()
    return rho, residual


class OnceDifferentiableSquare(torch.autograd.Function):
    """``x²`` with a backward that torch does not differentiate again."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class SquareActivationMLP(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](OnceDifferentiableSquare.apply(self.net[0](x)))


class PrototypeMLP(MLP):
    """Logits = −distances to 3 learnt prototypes (torch.cdist, whose backward has no derivative)."""

    def __init__(self) -> None:
        super().__init__(hidden=8)
        self.prototypes = nn.Parameter(torch.randn(3, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(self.net[0](x), self.prototypes)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (PrototypeMLP, r"on one training sample: the derivative for '_cdist_backward' is not implemented\..*freeze"),
        (SquareActivationMLP, r"autograd.Function OnceDifferentiableSquare whose backward is marked @once_diff"),
    ],
)
def test_a_model_without_double_backward_is_refused_at_fit_start(model, message) -> None:
    pl.seed_everything(0)
    monitor = SharpnessMonitor(num_samples=20)
    trainer = pl.Trainer(**trainer_kwargs(callbacks=[monitor], max_epochs=2))
    with pytest.raises(MisconfigurationException, match=f"^SharpnessMonitor: .*{message}"):
        trainer.fit(model(), make_loader(make_dataset(40), batch_size=20))
    assert trainer.current_epoch == 0 and trainer.global_step == 0 and monitor.checks_done == 0


# the model's encoder is in eval mode on purpose (a mix of modes the probe must keep), which Lightning notes
@pytest.mark.filterwarnings("ignore:Found \\d+ module\\(s\\) in eval mode at the start of training:UserWarning")
def test_the_fit_start_probe_leaves_the_rng_and_the_modes_as_they_were(distribution) -> None:
    seen = []

    class Look(distribution.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            modes = [m.training for m in pl_module.modules()]
            seen.append((torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy(), modes))

    pl.seed_everything(0)
    model = text_classifier(distribution)
    model.encoder.eval()  # a mix of modes, kept as it is
    monitor = SharpnessMonitor(num_samples=TOKEN_SAMPLES, loss_fn=token_loss)
    trainer = distribution.Trainer(**trainer_kwargs(callbacks=[Look(), monitor, Look()], max_epochs=1))
    trainer.fit(model, make_loader(Tokens(), batch_size=16))
    (torch_before, python_before, numpy_before, modes_before), (torch_after, python_after, numpy_after, modes_after) = (
        seen
    )
    assert torch.equal(torch_before, torch_after) and python_before == python_after
    assert (numpy_before == numpy_after).all() and modes_before == modes_after
    assert modes_before.count(False) >= 1 and modes_before[0] is True
