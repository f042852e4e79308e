"""The offline report of a run (``lightning-stability report``): one picture of its margin files (accuracy and the
certified floors with the instability events, the condition constants, the margin densities of every check) and,
when its TensorBoard event files hold them, of the training-dynamics scalars of the other monitors.

* `report_figure`, `make_report` — the figure, and the PNG drawn from a run's log directory;
* `DYNAMICS_PANELS`, `read_dynamics_scalars` — the dynamics panels and the scalars they read (through
  `lightning_stability.tensorboard_events`).

The checks it marks as instability events are `lightning_stability.check_events.instability_events`.

matplotlib is imported inside the functions (an optional dependency, in the ``examples`` extra); figures are
drawn without a display (``Agg``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..check_events import EVENT_LABEL, instability_events
from ..files import load_margin_files
from ..tensorboard_events import CHECK_EPOCH_TAGS, event_directories, read_scalars, step_to_epoch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DYNAMICS_PANELS",
    "DynamicsPanel",
    "make_report",
    "read_dynamics_scalars",
    "report_figure",
    "stop_note",
]


@dataclass(frozen=True)
class DynamicsPanel:
    """A report panel for one training-dynamics scalar found in a run's TensorBoard event files."""

    pattern: str
    """Regular expression of the scalar tag(s) (``fullmatch``); a group names the series (e.g. the layer)."""
    title: str
    ylabel: str
    series_label: str
    """Legend label of a series; ``{0}`` is the pattern's first group."""
    reference: float | None = None
    reference_label: str = ""
    log_scale: bool = False
    ylim: tuple[float, float] | None = None


DYNAMICS_PANELS: tuple[DynamicsPanel, ...] = (
    DynamicsPanel(
        "stability/sharpness/edge_ratio",
        "edge of stability (SharpnessMonitor)",
        "edge_ratio",
        "edge_ratio: λ_max(P^-½ H P^-½) / T",
        reference=1.0,
        reference_label="1: the optimizer's edge of stability",
    ),
    DynamicsPanel(
        r"stability/parametrization/layer(\d+)/dead_fraction",
        "dead hidden units (ParametrizationMonitor)",
        "dead fraction",
        "layer {0}",
        ylim=(-0.02, 1.02),
    ),
    DynamicsPanel(
        "stability/gradient_flow/first_last_ratio",
        "gradient flow (GradientFlowMonitor)",
        "‖g_first‖ / ‖g_last‖",
        "first / last layer gradient norm",
        reference=1.0,
        reference_label="1: balanced (≪ 1 vanishing, ≫ 1 exploding)",
        log_scale=True,
    ),
)
"""The panels `report_figure` adds when a run's event files hold these scalars (one panel per entry found)."""


def read_dynamics_scalars(events_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of the scalars the report plots, read with TensorBoard's EventAccumulator
    from every directory under ``events_dir`` (recursively) that holds event files.

    Read: the tags of `DYNAMICS_PANELS`, the check epochs (``stability/check_epoch`` or
    ``stability_diagnostics/check_epoch``, which place the other monitors' steps on the checks' epoch axis) and
    `STOPPED_TAG` (whether the monitor stopped training).
    Returns ``{}`` when there are no event files (or no TensorBoard).
    """
    patterns = [re.compile(panel.pattern) for panel in DYNAMICS_PANELS]
    patterns += [re.compile(re.escape(tag)) for tag in (*CHECK_EPOCH_TAGS, STOPPED_TAG)]
    return read_scalars(events_dir, patterns)


STOPPED_TAG = "stability_final/stopped"  # 1: the StabilityMonitor stopped training (a final value, at fit end)


def stop_note(checks: Sequence[dict[str, Any]], scalars: dict[str, list[tuple[int, float]]]) -> str | None:
    """What the run's records say of a stop by the monitor, ``None`` if nothing: the ``stopping`` sentence of the
    margin file of the check that stopped training ("Training stopped at epoch 10: instability (1 consecutive event,
    patience 1)."), else, from the event files, `STOPPED_TAG` at 1 — which records the stop but not its check."""
    for check in reversed(checks):
        if check.get("stopping"):
            return str(check["stopping"])
    stopped = scalars.get(STOPPED_TAG)
    if stopped and stopped[-1][1] >= 0.5:
        return f"Training stopped by the StabilityMonitor ({STOPPED_TAG} = 1; the files do not say at which check)."
    return None


FLOOR_LINES = (
    ("loss_floor", "s-", 6.0, 1.8, "tab:blue", "loss floor (Theorem 0)", 3.0),
    ("theorem_a/floor", "^--", 4.5, 1.5, "tab:orange", "Theorem A floor", 3.5),
    ("theorem_b/floor", "v-", 10.0, 2.6, "tab:green", "Theorem B floor", 2.0),
)
"""The floors' lines (in the legend's order): key, style, marker size, line width, colour, label and z-order, each
smaller one drawn over the larger (floors of one value — all 0 before training — all show), the accuracy over all."""

CONSTANT_LINES = (
    ("theorem_a/condition_a_constant", "^-", 6.0, 1.5, "tab:orange"),
    ("theorem_b/kappa_lower", "v-", 9.0, 2.6, "tab:green"),
    ("theorem_b/kappa_upper", "v--", 4.5, 1.2, "tab:olive"),
)
CONSTANT_LABELS = {
    "theorem_a/condition_a_constant": "C_A: Condition A's least constant: mass below −η + λ ≤ C_A·λ^γ (Theorem A; "
    "smaller: a thinner bad tail)",
    "theorem_b/kappa_lower": "κ_lo: certified lower bound of Condition B's constant κ_B (Theorem B; > 1: B holds)",
    "theorem_b/kappa_upper": "κ_hi: upper bound of κ_B (near 1: an isolated margin cluster, the B witness)",
}
"""The condition constants' lines (key, style, marker size, line width, colour) and what each constant is."""


def _series(reports: Sequence[dict[str, float]], key: str) -> list[float]:
    return [report.get(key, math.nan) for report in reports]


def _mark_events(axes: Axes, epochs: Sequence[float]) -> None:
    """Dotted red lines at the instability events; integer epoch ticks."""
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for epoch in epochs:
        axes.axvline(epoch, color="red", lw=1.0, ls=":", alpha=0.7, zorder=0)


def _floors_panel(axes: Axes, checks: Sequence[dict[str, Any]], events: list[int], recomputed: bool) -> None:
    epochs = [check["epoch"] for check in checks]
    reports = [check["report"] for check in checks]
    series = functools.partial(_series, reports)

    accuracy = series("accuracy")
    axes.plot(epochs, accuracy, "o-", color="black", lw=2, label="training accuracy", zorder=4)  # over the floors
    # equal floors (all 0 early in training) stay apart: the larger marker and the thicker line under the smaller
    for key, style, size, width, colour, label, z in FLOOR_LINES:
        axes.plot(epochs, series(key), style, ms=size, lw=width, color=colour, label=label, zorder=z)
    how = "\n(recomputed with tol 0)" if recomputed else ""
    label = f"instability event:\n{EVENT_LABEL}{how}" if events else f"instability events: none\n({EVENT_LABEL}){how}"
    marker: dict[str, Any] = {"marker": "X", "markersize": 13, "color": "red", "markeredgecolor": "darkred"}
    at = ([epochs[i] for i in events], [accuracy[i] for i in events])
    axes.plot(*at, linestyle="none", label=label, gid="instability_events", zorder=5, **marker)
    _mark_events(axes, [epochs[i] for i in events])
    text: dict[str, Any] = {"ha": "center", "va": "bottom", "fontsize": 7.5, "color": "darkred"}
    for position, i in enumerate(events[:6]):  # the numbers, low in the panel (floors are high late in training)
        (a0, l0), (a1, l1) = (
            (report.get("accuracy", math.nan), report.get("loss", math.nan)) for report in reports[i - 1 : i + 1]
        )
        axes.annotate(
            f"epoch {epochs[i]}\naccuracy {a0:.4g} → {a1:.4g}\nloss {l0:.3g} → {l1:.3g}",
            (epochs[i], accuracy[i]),
            xytext=(epochs[i], 0.03 + 0.14 * (position % 3)),
            **text,
            arrowprops={"arrowstyle": "-", "color": "darkred", "lw": 0.6, "alpha": 0.6},
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "darkred", "lw": 0.6, "alpha": 0.85},
            zorder=6,
        )
    axes.set(xlabel="epoch (−1: before training)", ylabel="accuracy / certified floor", ylim=(-0.02, 1.05))
    axes.set_title("accuracy and its certified floors")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8)  # below: hides no point


def _constants_panel(axes: Axes, checks: Sequence[dict[str, Any]], event_epochs: list[float]) -> None:
    epochs = [check["epoch"] for check in checks]
    reports = [check["report"] for check in checks]
    series = functools.partial(_series, reports)

    for key, style, size, width, colour in CONSTANT_LINES:  # the smaller drawn over the larger: κ_hi = κ_lo shows both
        label = CONSTANT_LABELS[key]
        axes.semilogy(epochs, series(key), style, ms=size, lw=width, color=colour, label=label, zorder=2 + 1 / size)
    axes.axhline(1.0, color="grey", lw=0.8, label="1: κ_B = 1 is an isolated cluster")
    _mark_events(axes, event_epochs)
    axes.set(xlabel="epoch", ylabel="constant (log scale)", title="condition constants of the best floors")
    axes.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1)  # below: hides no point


def _density(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of ``values`` per unit margin in the bins ``edges`` (mass outside them is left out), smoothed
    with a Gaussian of 1.5 bins so that a dozen overlaid curves stay readable."""
    counts = np.histogram(values, bins=edges)[0].astype(np.float64)
    offsets = np.arange(-4, 5, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / 1.5) ** 2)
    smoothed = np.convolve(counts, kernel / kernel.sum(), mode="same")
    return smoothed / max(values.size, 1) / (edges[1] - edges[0])


def _margins_panel(figure: Figure, axes: Axes, checks: Sequence[dict[str, Any]]) -> None:
    """Densities of every check on one x-range: the 0.5–99.5 % quantiles of the trained checks (and 0); the
    check before training dashed and, if it peaks higher than the others, clipped (its peak in the legend).
    Colours follow the epoch (colour bar); the last check is drawn thick."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    def margins_of(check: dict[str, Any]) -> np.ndarray:
        values = check["margins"].detach().to(torch.float64).numpy()
        return values[np.isfinite(values)]

    trained = [check for check in checks if check["epoch"] >= 0] or list(checks)
    pooled = [margins_of(check) for check in trained]
    pooled = [values for values in pooled if values.size] or [np.zeros(1)]
    low = min(float(np.quantile(values, 0.005)) for values in pooled)
    high = max(float(np.quantile(values, 0.995)) for values in pooled)
    low, high = min(low, 0.0), max(high, 0.0)
    pad = 0.04 * (high - low) if high > low else 0.5
    low, high = low - pad, high + pad
    edges = np.linspace(low, high, 121)
    centres = 0.5 * (edges[1:] + edges[:-1])

    trained_epochs = [int(check["epoch"]) for check in checks if check["epoch"] >= 0]
    first, last = (min(trained_epochs), max(trained_epochs)) if trained_epochs else (0, 1)
    norm = Normalize(vmin=first, vmax=last if last > first else first + 1)
    colormap = matplotlib.colormaps["viridis"]
    top = 0.0
    start_peak = None
    last_check = checks[-1]
    for check in checks:
        density = _density(margins_of(check), edges)
        if check["epoch"] < 0:
            start_peak = float(density.max())
            axes.plot(centres, density, color="grey", ls="--", lw=1.4, zorder=2, gid="margin_density_start")
            continue
        is_last = check is last_check
        label = f"last check (epoch {check['epoch']})" if is_last else None
        style: dict[str, Any] = {"color": colormap(norm(check["epoch"])), "lw": 2.6 if is_last else 1.2}
        style["zorder"] = 3 if is_last else 2
        axes.plot(centres, density, label=label, gid="margin_density", **style)
        top = max(top, float(density.max()))
    if top == 0.0:
        top = start_peak or 1.0
    axes.set_ylim(0, top * 1.12)
    if start_peak is not None:
        clipped = start_peak > top * 1.12
        label = f"before training (peak {start_peak:.2g}, off scale)" if clipped else "before training"
        axes.plot([], [], color="grey", ls="--", label=label)
    axes.axvspan(low, 0.0, color="red", alpha=0.06, lw=0)
    axes.axvline(0.0, color="red", lw=1.0, label="δ = 0 (left: misclassified)")
    axes.set_xlim(low, high)
    axes.set(
        xlabel="margin δ (range: 0.5–99.5 % of the trained checks)",
        ylabel="fraction of the samples per unit of δ (smoothed)",
        title="margin distribution per check",
    )
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)  # below: hides no peak
    colorbar = figure.colorbar(ScalarMappable(norm=norm, cmap=colormap), ax=axes, pad=0.01, fraction=0.06)
    colorbar.set_label("epoch of the check")


def _dynamics_panel(
    axes: Axes,
    panel: DynamicsPanel,
    series: dict[str, list[tuple[int, float]]],
    to_epoch: Callable[[np.ndarray], np.ndarray],
    event_epochs: list[float],
) -> None:
    pattern = re.compile(panel.pattern)

    def order(tag: str) -> tuple[int, str]:
        match = pattern.fullmatch(tag)
        group = match.group(1) if match and match.groups() else ""
        return (int(group) if group.isdigit() else 0, tag)

    for tag in sorted(series, key=order):
        match = pattern.fullmatch(tag)
        steps = np.array([step for step, _ in series[tag]], dtype=np.float64)
        values = np.array([value for _, value in series[tag]], dtype=np.float64)
        label = panel.series_label.format(*(match.groups() if match else ()))
        axes.plot(to_epoch(steps), values, "o-" if values.size <= 60 else "-", ms=4, label=label)
    if panel.reference is not None:
        axes.axhline(panel.reference, color="red", ls="--", lw=1.0, label=panel.reference_label)
    if panel.log_scale:
        axes.set_yscale("log")
    if panel.ylim is not None:
        axes.set_ylim(*panel.ylim)
    _mark_events(axes, event_epochs)
    axes.set(xlabel="epoch", ylabel=panel.ylabel, title=panel.title)
    axes.legend(fontsize=8)


def _headline(checks: Sequence[dict[str, Any]], events: list[int], recomputed: bool) -> str:
    last = checks[-1]
    report = last["report"]
    when = "before training" if last["epoch"] < 0 else f"epoch {last['epoch']}"
    floors = ", ".join(
        f"{name} {report.get(key, math.nan):.4f}"
        for name, key in (("loss", "loss_floor"), ("A", "theorem_a/floor"), ("B", "theorem_b/floor"))
    )
    epochs = ", ".join(str(checks[i]["epoch"]) for i in events)
    count = f"{len(events)} instability event{'s' if len(events) != 1 else ''}"
    if events:
        count += f" (epoch{'s' if len(events) > 1 else ''} {epochs})"
    if recomputed:
        count += ", tol 0"
    return f"last check ({when}): accuracy {report.get('accuracy', math.nan):.4f}; certified floors: {floors}; {count}"


def report_figure(
    checks: Sequence[dict[str, Any]], events_dir: str | Path | None = None, *, title: str | None = None
) -> Figure:
    """The report of a run as a matplotlib Figure (what `make_report` saves).

    Top row: the training accuracy against the three certified floors, with a red ✕ on every instability event
    (`instability_events`); the condition constants; the margin densities of every check on the trained checks'
    0.5–99.5 % range, coloured by epoch (colour bar), the check before training dashed. A second row holds one
    panel per `DYNAMICS_PANELS` entry whose scalars the TensorBoard event files under ``events_dir`` hold (none
    if ``events_dir`` is ``None`` or has no such scalars). Instability events are dotted red lines in every
    panel with an epoch axis. The title's last line says when the monitor stopped training, where the run records
    it (`stop_note`).

    Args:
        checks: the content of the margin files (`lightning_stability.files.load_margin_files`), in check order.
        events_dir: a directory searched recursively for TensorBoard event files of the same run.
        title: the figure's title (default ``"lightning-stability report"``).
    """
    from matplotlib.figure import Figure

    if not checks:
        raise ValueError("report_figure needs at least one check (the content of a margin file).")
    events, recomputed = instability_events(checks)
    event_epochs = [float(checks[i]["epoch"]) for i in events]
    scalars = read_dynamics_scalars(events_dir) if events_dir is not None else {}
    found = ((p, {t: v for t, v in scalars.items() if re.fullmatch(p.pattern, t) and v}) for p in DYNAMICS_PANELS)
    panels = [(panel, matching) for panel, matching in found if matching]

    rows = 2 if panels else 1
    figure = Figure(figsize=(18, 5.0 * rows + 0.4), layout="constrained")
    grid = figure.add_gridspec(rows, 3, width_ratios=(1.0, 1.0, 1.15))
    floors = figure.add_subplot(grid[0, 0])
    constants = figure.add_subplot(grid[0, 1], sharex=floors)
    distribution = figure.add_subplot(grid[0, 2])
    _floors_panel(floors, checks, events, recomputed)
    _constants_panel(constants, checks, event_epochs)
    _margins_panel(figure, distribution, checks)
    if panels:
        to_epoch = step_to_epoch(checks, scalars)
        for column, (panel, matching) in enumerate(panels):
            axes = figure.add_subplot(grid[1, column], sharex=floors)
            _dynamics_panel(axes, panel, matching, to_epoch, event_epochs)
    stop = stop_note(checks, scalars)
    lines = [title or "lightning-stability report", _headline(checks, events, recomputed), *([stop] if stop else [])]
    figure.suptitle("\n".join(lines), fontsize=12)
    return figure


def _run_directory(log_dir: Path) -> Path:
    """The run's directory: ``log_dir``, or its parent when ``log_dir`` is the monitor's ``margins`` folder."""
    return log_dir.parent if log_dir.name == "margins" and not event_directories(log_dir) else log_dir


def make_report(log_dir: str | Path, output: str | Path, events_dir: str | Path | None = None) -> Path:
    """Draw `report_figure` of the margin files found under ``log_dir`` into ``output`` (PNG).

    The dynamics panels read the TensorBoard event files under ``events_dir`` (default: ``log_dir``, or the run
    directory around it when ``log_dir`` is the ``<run>/margins`` folder that ``save_margins=True`` writes).

    Raises:
        FileNotFoundError: if ``log_dir`` holds no margin files.
    """
    log_dir = Path(log_dir)
    checks = load_margin_files(log_dir)
    run_dir = _run_directory(log_dir)
    figure = report_figure(
        checks, run_dir if events_dir is None else events_dir, title=f"lightning-stability report: {run_dir}"
    )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)
    return output
