"""``lightning-stability report``: one PNG summarising a run from its saved margin files."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["load_checks", "make_report"]


def load_checks(log_dir: str | Path) -> list[dict]:
    """Every ``margins_epoch=*.pt`` file under ``log_dir`` (written by ``StabilityMonitor(save_margins=...)``),
    in check order."""
    files = sorted(Path(log_dir).rglob("margins_epoch=*.pt"), key=lambda path: (path.parent, path.name))
    if not files:
        raise FileNotFoundError(
            f"no margin files (margins_epoch=*.pt) under {log_dir}; run training with "
            "StabilityMonitor(save_margins=True) (the example configs do) and pass its log directory."
        )
    checks = [torch.load(path, map_location="cpu", weights_only=True) for path in files]
    return sorted(checks, key=lambda check: (check["global_step"], check["epoch"]))


def make_report(log_dir: str | Path, output: str | Path) -> Path:
    """Plot accuracy vs. loss floor vs. Theorem A/B floors, the condition constants and the margin
    distributions of every check found under ``log_dir`` into ``output`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checks = load_checks(log_dir)
    epochs = [check["epoch"] for check in checks]
    reports = [check["report"] for check in checks]

    def series(key: str) -> list[float]:
        return [report.get(key, float("nan")) for report in reports]

    figure, (floors, constants, distribution) = plt.subplots(1, 3, figsize=(16, 4.5))
    floors.plot(epochs, series("accuracy"), "o-", color="black", label="training accuracy")
    floors.plot(epochs, series("loss_floor"), "s-", label="loss floor (Theorem 0)")
    floors.plot(epochs, series("theorem_a/floor"), "^-", label="Theorem A floor")
    floors.plot(epochs, series("theorem_b/floor"), "v-", label="Theorem B floor")
    floors.set(xlabel="epoch (−1: before training)", ylabel="accuracy / certified floor", ylim=(-0.02, 1.02))
    floors.set_title("accuracy and certified floors")
    floors.legend(loc="lower right", fontsize=8)

    constants.semilogy(epochs, series("theorem_a/condition_a_constant"), "^-", label="C_A (Theorem A's best)")
    constants.semilogy(epochs, series("theorem_b/kappa_lower"), "v-", label="κ_lo (Theorem B's best)")
    constants.semilogy(epochs, series("theorem_b/kappa_upper"), "v--", label="κ_hi")
    constants.axhline(1.0, color="grey", lw=0.8)
    constants.set(xlabel="epoch", title="condition constants")
    constants.legend(fontsize=8)

    colours = plt.cm.viridis(torch.linspace(0, 1, len(checks)).numpy())
    for colour, check in zip(colours, checks, strict=True):
        margins = check["margins"].numpy()
        distribution.hist(
            margins, bins=80, histtype="step", density=True, color=colour, label=f"epoch {check['epoch']}"
        )
    distribution.axvline(0.0, color="red", lw=0.8)
    distribution.set(xlabel="margin δ", ylabel="density", title="margin distribution per check")
    if len(checks) <= 12:
        distribution.legend(fontsize=7)
    figure.suptitle(f"lightning-stability report: {Path(log_dir)}")
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output
