"""Every Python recipe the README and docs/ show runs verbatim: each ```python block is executed as written, with
a small LightningModule bound to `model` and a LightningDataModule bound to `dm` (the names the recipes use), in
a temporary working directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def recipes() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        for number, match in enumerate(BLOCK.finditer(document.read_text()), start=1):
            found.append((f"{document.relative_to(ROOT)}#{number}", match.group(1)))
    return found


class TinyClassifier(pl.LightningModule):
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


class TinyData(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=generator)
        self.dataset = TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long())

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=32, shuffle=True)


def test_the_readme_and_the_docs_show_recipes() -> None:
    names = [name for name, _ in recipes()]
    assert any(name.startswith("README.md") for name in names)
    assert any(name.startswith("docs/guide.md") for name in names)


@pytest.mark.parametrize(("name", "code"), recipes(), ids=[name for name, _ in recipes()])
def test_recipe_runs_verbatim(name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pl.seed_everything(0)
    namespace = {"__name__": "__recipe__", "model": TinyClassifier(), "dm": TinyData()}
    exec(compile(code, name, "exec"), namespace)
