"""``lightning-stability check-data``: which training samples form small isolated clusters? (THEORY.md §9)"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from . import theory

__all__ = ["first_linear_rows", "format_report", "witness_figure"]


def first_linear_rows(model: nn.Module) -> torch.Tensor | None:
    """Weight rows of the model's first :class:`~torch.nn.Linear` (the slabs its units ``|⟨w, x⟩ + b|`` see),
    without rows of norm zero; ``None`` if the model has no linear layer."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            rows = module.weight.detach().to(torch.float64).cpu()
            return rows[rows.norm(dim=1) > 0]
    return None


def format_report(report: theory.DataClusterReport) -> str:
    """A readable table of a :class:`~lightning_stability.theory.DataClusterReport`."""
    lines = [
        f"samples N = {report.num_samples}, directions = {report.directions.shape[0]} "
        f"({', '.join(f'{report.kinds.count(k)} {k}' for k in ('random', 'principal', 'extra') if k in report.kinds)})",
        f"settings: dilation Λ = {report.dilation:g}, max mass m = {report.max_mass:g}, "
        f"min cluster mass m_min = {report.min_cluster_mass:.4g}",
        "",
        f"{'directions':<12} {'κ_lo (min)':>12} {'κ_hi (min)':>12} {'violations':>11}",
    ]
    kinds = torch.tensor([("random", "principal", "extra").index(kind) for kind in report.kinds])
    for code, kind in enumerate(("random", "principal", "extra")):
        mask = kinds == code
        if bool(mask.any()):
            violations = int((report.upper[mask] <= 1 + 1e-12).sum())
            lines.append(
                f"{kind:<12} {float(report.lower[mask].min()):>12.4f} {float(report.upper[mask].min()):>12.4f} "
                f"{violations:>11d}"
            )
    lines.append(f"{'all':<12} {report.constant_lower:>12.4f} {report.constant_upper:>12.4f}")
    lines.append("")
    if report.witness is None:
        lines.append("no admissible slab: every slab's dilation exceeds the mass cap m.")
    else:
        centre, radius = report.witness
        verdict = (
            "an isolated cluster (proven violation: its dilated slab holds no more mass)"
            if report.violated
            else "the least-isolated slab found (no violation on the sampled directions; evidence, not proof)"
        )
        lines.append(
            f"worst direction: {report.worst_direction_kind}; slab |<u, x> - {centre:.4g}| <= {radius:.4g}: {verdict}"
        )
        shown = report.witness_indices[:20].tolist()
        more = "" if report.witness_indices.numel() <= 20 else f" … ({report.witness_indices.numel()} samples)"
        lines.append(f"samples inside: {shown}{more}")
    return "\n".join(lines)


def witness_figure(report: theory.DataClusterReport, inputs: torch.Tensor, output: str | Path) -> Path:
    """PNG of the witness samples (as images if the inputs are square images) and the worst projection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flat = inputs.reshape(inputs.shape[0], -1).to(torch.float64)
    projections = flat @ report.worst_direction
    indices = report.witness_indices[:32]
    side = math.isqrt(flat.shape[1])
    columns = 8
    rows = 1 + (math.ceil(len(indices) / columns) if side * side == flat.shape[1] and len(indices) else 0)
    figure = plt.figure(figsize=(2 * columns, 2.4 * rows))
    axes = figure.add_subplot(rows, 1, 1)
    axes.hist(projections.numpy(), bins=120, color="grey")
    if report.witness is not None:
        centre, radius = report.witness
        axes.axvspan(centre - radius, centre + radius, color="red", alpha=0.4, label="witness slab")
        axes.axvspan(
            centre - report.dilation * radius,
            centre + report.dilation * radius,
            color="red",
            alpha=0.15,
            label=f"dilated ×{report.dilation:g}",
        )
        axes.legend()
    axes.set_title(
        f"projections on the worst ({report.worst_direction_kind}) direction; κ_hi = {report.constant_upper:.4f}"
    )
    if rows > 1:
        for position, index in enumerate(indices.tolist()):
            image_axes = figure.add_subplot(rows, columns, columns + position + 1)
            image_axes.imshow(flat[index].reshape(side, side).numpy(), cmap="gray")
            image_axes.set_title(f"#{index}", fontsize=8)
            image_axes.axis("off")
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=90)
    plt.close(figure)
    return output
