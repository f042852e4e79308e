"""Every Python recipe the README and docs/ show runs verbatim: each ```python block is executed as written, with
a small LightningModule bound to `model` and a LightningDataModule bound to `dm` (the names the recipes use), in
a temporary working directory. Then what it built is checked, generically (no recipe is special-cased by name):

* every call of a package callback class in the recipe built one instance with the keyword arguments written in
  the call (literals compare equal, names are the very objects bound to them), and no other package callback exists;
* if it built a Trainer: every package callback is in ``trainer.callbacks``, and the Trainer has the literal settings
  and the logger classes written in its call;
* if it fitted: every StabilityMonitor checked on the schedule and its last report's accuracy is the accuracy of
  ``model`` on ``dm``'s samples, recomputed from the logits (ties are errors);
* every ``theory`` report it built has the accuracy and smallest margin of a margins tensor it built;
* and it built at least one of these things.

Each recipe runs twice: as written (``pytorch_lightning``), and with its imports turned into the other
distribution's (``lightning.pytorch``, ``lightning.fabric``) with the tiny model and data of that distribution — a
user who pastes a recipe into an ``import lightning as L`` script gets the same result, and no class of the other
distribution ends up in the run.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
from fractions import Fraction
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import StabilityMonitor
from lightning_stability.theory import StabilityReport
from tests.theory.oracles import naive_margins

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def recipes() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        for number, match in enumerate(BLOCK.finditer(document.read_text()), start=1):
            found.append((f"{document.relative_to(ROOT)}#{number}", match.group(1)))
    return found


DISTRIBUTIONS = ("pytorch_lightning", "lightning.pytorch")
TRAINERS = tuple(importlib.import_module(name).Trainer for name in DISTRIBUTIONS)
CALLBACKS = tuple(importlib.import_module(name).Callback for name in DISTRIBUTIONS)


def in_distribution(code: str, distribution: str) -> str:
    """The recipe with its imports of ``pytorch_lightning`` (and ``lightning_fabric``) turned into
    ``distribution``'s."""
    if distribution == "pytorch_lightning":
        return code
    return re.sub(r"\bpytorch_lightning\b", "lightning.pytorch", code).replace("lightning_fabric", "lightning.fabric")


@functools.cache
def tiny_classes(distribution: str) -> tuple[type, type]:
    """A small LightningModule and LightningDataModule of ``distribution``."""
    package = importlib.import_module(distribution)

    class TinyClassifier(package.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class TinyData(package.LightningDataModule):
        def __init__(self) -> None:
            super().__init__()
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(96, 4, generator=generator)
            self.dataset = TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long())

        def train_dataloader(self) -> DataLoader:
            return DataLoader(self.dataset, batch_size=32, shuffle=True)

    return TinyClassifier, TinyData


def test_the_readme_and_the_docs_show_recipes() -> None:
    names = [name for name, _ in recipes()]
    assert any(name.startswith("README.md") for name in names)
    assert any(name.startswith("docs/guide.md") for name in names)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize(("name", "code"), recipes(), ids=[name for name, _ in recipes()])
def test_recipe_runs_verbatim(
    name: str, code: str, distribution: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pl.seed_everything(0)
    model_class, data_class = tiny_classes(distribution)
    code = in_distribution(code, distribution)
    namespace = {"__name__": "__recipe__", "model": model_class(), "dm": data_class()}
    exec(compile(code, name, "exec"), namespace)

    objects = built_objects(namespace)
    callbacks = [obj for obj in objects if is_package_callback(obj)]
    trainers = [obj for obj in objects if isinstance(obj, TRAINERS)]
    reports = [obj for obj in objects if isinstance(obj, StabilityReport)]
    assert callbacks or reports, "the recipe built nothing this test can check"
    check_calls(code, namespace, callbacks, trainers)
    for trainer in trainers:
        assert type(trainer).__module__.startswith(distribution)  # never the other distribution's classes
        package_callback = importlib.import_module(distribution).Callback
        assert all(isinstance(c, package_callback) for c in trainer.callbacks)
        assert all(any(c is callback for c in trainer.callbacks) for callback in callbacks)
        if trainer.state.fn == "fit" and trainer.state.finished:
            for monitor in (c for c in trainer.callbacks if isinstance(c, StabilityMonitor)):
                check_fitted_monitor(monitor, trainer, namespace["model"], namespace["dm"])
    for report in reports:
        margins = [
            obj
            for obj in objects
            if isinstance(obj, torch.Tensor) and obj.is_floating_point() and obj.shape == (report.num_samples,)
        ]
        assert any(
            report.accuracy == pytest.approx(float(Fraction(int((m > 0).sum()), len(m))), rel=1e-12)
            and report.margin_min == float(m.min())
            for m in margins
        ), "no margins tensor of the recipe has the report's accuracy and smallest margin"


def built_objects(namespace: dict) -> list:
    """Every object the recipe bound to a name, the members of the lists it bound and the callbacks of its trainers."""
    seen: dict[int, object] = {}
    queue = [value for key, value in namespace.items() if key != "__builtins__"]
    while queue:
        obj = queue.pop(0)
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj
        if isinstance(obj, list | tuple):
            queue.extend(obj)
        elif isinstance(obj, TRAINERS):
            queue.extend(obj.callbacks)
    return list(seen.values())


def is_package_callback(obj: object) -> bool:
    return isinstance(obj, CALLBACKS) and type(obj).__module__.startswith("lightning_stability.")


def keyword_values(call: ast.Call, namespace: dict) -> dict:
    """The keyword arguments of a call that are literals (by value) or names (the objects bound to them)."""
    values = {}
    for keyword in call.keywords:
        if isinstance(keyword.value, ast.Name):
            values[keyword.arg] = namespace[keyword.value.id]
        else:
            try:
                values[keyword.arg] = ast.literal_eval(keyword.value)
            except ValueError:
                continue  # built by another call: checked where that call is
    return values


def matches(obj: object, values: dict) -> bool:
    return all(
        getattr(obj, key) is value or (not callable(value) and getattr(obj, key) == value)
        for key, value in values.items()
    )


def check_calls(code: str, namespace: dict, callbacks: list, trainers: list) -> None:
    """Each call of a package callback class built one distinct instance with the call's settings; the Trainer has
    the literal settings and the logger classes of its call."""
    unmatched = list(callbacks)
    for call in (node for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Call)):
        if not isinstance(call.func, ast.Name):
            continue
        cls = namespace.get(call.func.id)
        if isinstance(cls, type) and issubclass(cls, CALLBACKS) and cls.__module__.startswith("lightning_stability"):
            values = keyword_values(call, namespace)
            found = [obj for obj in unmatched if type(obj) is cls and matches(obj, values)]
            assert found, f"no {cls.__name__} with {values}"
            unmatched.remove(found[0])
        elif isinstance(cls, type) and issubclass(cls, TRAINERS):
            (trainer,) = trainers
            literal = {k: v for k, v in keyword_values(call, namespace).items() if not isinstance(v, list | tuple)}
            assert matches(trainer, literal), literal
            for keyword in call.keywords:
                if keyword.arg == "logger" and isinstance(keyword.value, ast.Call):
                    assert isinstance(trainer.logger, namespace[keyword.value.func.id])
    assert not unmatched, f"package callbacks no call of the recipe made: {unmatched}"


def check_fitted_monitor(monitor: StabilityMonitor, trainer: pl.Trainer, model: pl.LightningModule, dm) -> None:
    """Checked on its schedule and once more at fit end if the last epoch was not scheduled; its last report is
    about ``dm``'s samples at the final weights."""
    epochs = range(trainer.current_epoch)
    scheduled = sum((e + 1) % monitor.every_n_epochs == 0 for e in epochs)
    final = int(trainer.current_epoch > 0 and trainer.current_epoch % monitor.every_n_epochs != 0)
    assert monitor.checks_done == int(monitor.check_at_start) + scheduled + final
    report = monitor.last_report
    assert report is not None
    x, y = dm.dataset.tensors
    assert (report.num_samples, report.num_classes) == (len(y), 3)
    model.eval()
    with torch.no_grad():
        margins = naive_margins(model(x), y)
    assert report.accuracy == pytest.approx(float(Fraction(sum(d > 0 for d in margins), len(y))), rel=1e-12)
    assert report.margin_min == min(margins)
