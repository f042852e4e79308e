"""Which samples are mislabelled? The per-sample scores of the StabilityMonitor against the ``aum`` package (issue 14).

    python benchmarks/label_noise.py [--epochs 12] [--noise 0.08] [--seeds 0 1] [--write] [--data-map FILE.png]

Flips the labels of ``--noise`` of the embedded MNIST training digits (a seeded choice; each flipped label moves to a
uniformly drawn other class), trains the example (``AbsMLP`` 784-256-256-10, Adam, lr 1e-3, batch 64, the
configuration of ``configs/mnist_abs_mlp.yaml``) with a ``StabilityMonitor`` checking before training and after
every epoch (the example's settings), and ranks
the samples by each score:

* ours, from the monitor's exact eval-mode margin passes (no extra forward pass): ``aum`` (mean margin over the
  checks, low = suspect), ``forgetting_events`` (high = suspect), cartography ``confidence`` (low = suspect),
  ``correctness``, the last margin and ``first_learned_check`` (late or never = suspect);
* ``aum.AUMCalculator`` fed the training-step logits of the same run (its documented use: every training batch's
  logits, targets and sample ids), low AUM = suspect.

Reports the AUROC of each score for "this label was flipped" and the precision among the top-k samples, k = the
number flipped, for each seed (the seed draws the flipped labels and the training). ``--write`` replaces the section "## Per-sample blame (issue 14)" of ``benchmarks/RESULTS.md``
(and nothing else); ``--data-map`` saves the run's data map with the flipped samples circled. Not a test.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, Dataset

from lightning_stability import StabilityMonitor
from lightning_stability.example import AbsMLP, MNISTDataModule

HERE = Path(__file__).resolve().parent
SECTION = "## Per-sample blame (issue 14)"
OURS = "ours: `aum` (mean margin over checks), low"
THEIRS = "`aum` package (AUMCalculator on the training-step logits), low"
READING = (
    "Reading: compare the two columns epoch by epoch; a check sees the model right after the epoch that took every "
    "sample's own gradient step, so once the network memorises wrong labels they get a positive margin at a check "
    "before they do at their next training step, and the mean over the checks falls behind the training-step mean."
)


class Indexed(Dataset):
    """``(x, noisy y, index)`` training items, so the training step can feed sample ids to the ``aum`` package."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.inputs[index], self.labels[index], index


class RecordedMLP(AbsMLP):
    """The example MLP whose training steps also hand their logits to an ``aum.AUMCalculator``, and keep each
    sample's training-step margin per epoch (``step_margins[epoch, index]``) for the per-epoch table."""

    def __init__(self, calculator, num_samples: int, epochs: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calculator = calculator
        self.step_margins = torch.full((epochs, num_samples), float("nan"), dtype=torch.float64)

    def training_step(self, batch, batch_idx):
        inputs, targets, ids = batch
        logits = self(inputs)
        self.calculator.update(logits.detach(), targets, ids.tolist())
        scores = logits.detach().double()
        label_score = scores.gather(1, targets[:, None])[:, 0]
        best_other = scores.scatter(1, targets[:, None], float("-inf")).max(dim=1).values
        self.step_margins[self.current_epoch, ids] = label_score - best_other
        return torch.nn.functional.cross_entropy(logits, targets)


def flip_labels(labels: torch.Tensor, fraction: float, seed: int, num_classes: int = 10):
    generator = torch.Generator().manual_seed(seed)
    count = round(fraction * len(labels))
    flipped = torch.randperm(len(labels), generator=generator)[:count]
    shift = torch.randint(1, num_classes, (count,), generator=generator)
    noisy = labels.clone()
    noisy[flipped] = (labels[flipped] + shift) % num_classes
    return noisy, torch.sort(flipped).values


def precision_at(scores: torch.Tensor, is_flipped: torch.Tensor, k: int) -> float:
    """Share of flipped samples among the k highest scores (ties by sample index)."""
    top = torch.sort(-scores, stable=True).indices[:k]
    return float(is_flipped[top].double().mean())


def run(epochs: int, noise: float, seed: int, work_dir: Path) -> dict:
    from aum import AUMCalculator

    data = MNISTDataModule(source="embedded")
    data.setup("fit")
    inputs, labels = data.train_set.tensors
    noisy, flipped = flip_labels(labels, noise, seed)
    pl.seed_everything(seed)
    calculator = AUMCalculator(str(work_dir / "aum"), compressed=True)
    model = RecordedMLP(
        calculator,
        len(noisy),
        epochs,
        input_dim=784,
        hidden_dims=(256, 256),
        num_classes=10,
        optimizer="adam",
        lr=1e-3,
    )
    # the example's monitor settings (configs/mnist_abs_mlp.yaml): a check before training and after every epoch
    monitor = StabilityMonitor(
        every_n_epochs=1,
        check_at_start=True,
        forward_fn=lambda module, batch: (module(batch[0]), batch[1]),
        sample_history=True,
    )
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        callbacks=[monitor],
    )
    start = time.perf_counter()
    trainer.fit(model, DataLoader(Indexed(inputs, noisy), batch_size=64, shuffle=True))
    seconds = time.perf_counter() - start
    calculator.finalize()
    import pandas as pd

    theirs = pd.read_csv(work_dir / "aum" / "aum_values.csv").set_index("sample_id")["aum"]
    dynamics = monitor.sample_dynamics()
    assert dynamics.index.tolist() == list(range(len(noisy)))
    is_flipped = torch.zeros(len(noisy), dtype=torch.bool)
    is_flipped[flipped] = True
    scores = {
        OURS: -dynamics.aum,
        "ours: `forgetting_events`, high": dynamics.forgetting_events.double(),
        "ours: cartography `confidence`, low": -dynamics.confidence,
        "ours: `correctness`, low": -dynamics.correctness,
        "ours: last margin, low": -dynamics.last_margin,
        "ours: `first_learned_check` (never learned = last), high": torch.where(
            dynamics.first_learned_check < 0, monitor.checks_done, dynamics.first_learned_check
        ).double(),
        THEIRS: -torch.tensor([float(theirs[i]) for i in range(len(noisy))], dtype=torch.float64),
    }
    k = int(is_flipped.sum())
    # per epoch e: AUROC of the mean margin over the checks after epochs 0..e (ours) and over the training steps of
    # epochs 0..e (what the aum package averages); the last row is the full runs of the main table
    check_margins = torch.stack([margins for _, margins in monitor.samples.statistics.history])  # [1 + epochs, N]
    by_epoch = [
        (
            roc_auc_score(is_flipped.numpy(), (-check_margins[1 : e + 2].mean(dim=0)).numpy()),
            roc_auc_score(is_flipped.numpy(), (-model.step_margins[: e + 1].mean(dim=0)).numpy()),
        )
        for e in range(epochs)
    ]
    table = {
        name: (roc_auc_score(is_flipped.numpy(), score.numpy()), precision_at(score, is_flipped, k))
        for name, score in scores.items()
    }
    return dict(
        seed=seed,
        table=table,
        flipped=flipped,
        k=k,
        num_samples=len(noisy),
        checks=monitor.checks_done,
        accuracy=monitor.last_report.accuracy,
        seconds=seconds,
        dynamics=dynamics,
        by_epoch=by_epoch,
    )


def markdown(results: list[dict], args: argparse.Namespace) -> str:
    first = results[0]
    seeds = " ".join(str(seed) for seed in args.seeds)
    lines = [
        SECTION,
        "",
        f"Command: `python benchmarks/label_noise.py --epochs {args.epochs} --noise {args.noise} --seeds {seeds}`; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"torch {torch.__version__}.",
        "",
        f"{first['k']} of the {first['num_samples']:,} embedded training digits ({args.noise:.0%}) get a wrong label "
        f"(drawn with the seed); the example MLP trains {args.epochs} epochs (Adam, lr 1e-3, batch 64, shuffled) with "
        f"a check before training and after every epoch ({first['checks']} checks). One run per seed; AUROC for "
        f'"the label was flipped" and precision among the k = {first["k"]} top-ranked samples.',
        "",
        "| score | " + " | ".join(f"AUROC (seed {r['seed']}) | precision@k (seed {r['seed']})" for r in results) + " |",
        "|---|" + "---|---|" * len(results),
    ]
    for name in first["table"]:
        cells = " | ".join(f"{r['table'][name][0]:.4f} | {r['table'][name][1]:.4f}" for r in results)
        lines.append(f"| {name} | {cells} |")
    lines.append("")
    for r in results:
        ours = r["table"][OURS][0]
        theirs = r["table"][THEIRS][0]
        verdict = "met" if ours >= theirs else "**not met**"
        lines.append(
            f"* seed {r['seed']}: AUROC of our mean margin {ours:.4f} vs the `aum` package's {theirs:.4f}: goal "
            f"(ours ≥ theirs) {verdict}; final training accuracy on the noisy labels {r['accuracy']:.4f}, "
            f"fit {r['seconds']:.0f} s."
        )
    lines += [
        "* ours comes from the monitor's eval-mode margin passes at the checks (no extra forward pass in training);"
        " the `aum` package averages the logits of the training steps.",
        "",
        "Where the difference comes from: the AUROC of the mean margin over the first e + 1 epochs — ours over the"
        " checks after epochs 0..e (the check before training left out), the training-step margins of epochs 0..e"
        " (what the `aum` package averages, recomputed from the same logits):",
        "",
        "| epochs averaged | "
        + " | ".join(f"ours (seed {r['seed']}) | training steps (seed {r['seed']})" for r in results)
        + " |",
        "|---|" + "---|---|" * len(results),
    ]
    for e in range(len(first["by_epoch"])):
        cells = " | ".join(f"{r['by_epoch'][e][0]:.4f} | {r['by_epoch'][e][1]:.4f}" for r in results)
        lines.append(f"| 0..{e} | {cells} |")
    lines += ["", READING, ""]
    return "\n".join(lines)


def write_section(text: str, path: Path = HERE / "RESULTS.md") -> None:
    """Replace this benchmark's section of ``path`` (or append it), leaving every other section as it is."""
    content = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(SECTION) + r".*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(content):
        content = pattern.sub(lambda _: text + "\n", content, count=1)
    else:
        content = content.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(content.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--noise", type=float, default=0.08)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--write", action="store_true", help="update the section of benchmarks/RESULTS.md")
    parser.add_argument("--data-map", default=None, help="save the data map (flipped samples circled) here")
    args = parser.parse_args(argv)
    results = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as work_dir:
            results.append(run(args.epochs, args.noise, seed, Path(work_dir)))
    text = markdown(results, args)
    print(text)
    if args.write:
        write_section(text)
    if args.data_map:
        from lightning_stability.figures.data_map import data_map_figure

        result = results[0]
        figure = data_map_figure(
            result["dynamics"],
            title=f"embedded MNIST, {args.noise:.0%} flipped labels",
            highlight=result["flipped"],
            highlight_label="flipped label",
        )
        figure.savefig(args.data_map, dpi=90)
        print(f"data map: {args.data_map}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
