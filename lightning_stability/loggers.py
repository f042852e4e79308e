"""Logger output: every metric, histogram, figure, text and constant the monitors emit goes through this module.

Scalars go to every logger's ``log_metrics`` (`lightning_stability.scalars`) under the names of docs/metrics.md
(valid in TensorBoard, CSV, MLflow and Weights & Biases alike: letters, digits, ``_ . - /``). Everything else goes
to each logger's native API through one adapter per logger; a figure is rendered once
(`lightning_stability.figures.render`; or composed as pixels already), however many loggers show it:

| logger | histograms | figures | text | constants / final values |
|---|---|---|---|---|
| TensorBoard | histogram summaries | image summaries | text summaries (Markdown) | text, HParams |
| CSV | `histograms/*.csv` | `figures/*.png` | `text/*.md` | `hparams.yaml` |
| MLflow | CSV artifacts | PNG artifacts | Markdown artifacts | params, metrics |
| W&B | `wandb.Histogram` | `wandb.Image` | `wandb.Html` | run config, summary |

(the CSV files sit beside the logger's ``metrics.csv``). Loggers are recognised by class name, so the classes
of both Lightning distributions are. Any other logger receives the scalars only, and one warning per logger names
what it cannot show. Only global rank zero writes.
"""

from __future__ import annotations

import html
import math
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .distributions import rank_zero_warn
from .figures.render import RenderedFigure, render
from .lightning_internals import tensorboard_file_writer
from .tensorboard_hparams import session_end, session_start

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from matplotlib.figure import Figure

__all__ = [
    "LoggerAdapter",
    "adapter_for",
    "declare_final",
    "log_constants",
    "log_figure",
    "log_final",
    "log_histogram",
    "log_layout",
    "log_text",
]

HISTOGRAM_BINS = 64
"""Bins of the histograms written as CSV (CSV logger, MLflow)."""


# ---------------------------------------------------------------------------------------------------- adapters


def _class_names(obj: object) -> set[str]:
    return {cls.__name__ for cls in type(obj).__mro__}


def _file_name(tag: str) -> str:
    """A tag as a relative path: its ``/`` separated parts, other unsafe characters replaced by ``_``."""
    parts = ["".join(c if c.isalnum() or c in "._-" else "_" for c in part) for part in tag.split("/") if part]
    return "/".join(parts) or "_"


def _histogram_csv(values: Tensor) -> str:
    """``left,right,count`` rows of a ``HISTOGRAM_BINS``-bin histogram of the finite values (and their count)."""
    data = values.detach().cpu().to(torch.float64).reshape(-1)
    finite = data[torch.isfinite(data)]
    lines = ["left,right,count"]
    if finite.numel():
        low, high = float(finite.min()), float(finite.max())
        if low == high:
            low, high = low - 0.5, high + 0.5
        counts = torch.histc(finite, bins=HISTOGRAM_BINS, min=low, max=high)
        edges = torch.linspace(low, high, HISTOGRAM_BINS + 1, dtype=torch.float64)
        lines += [f"{float(edges[i])!r},{float(edges[i + 1])!r},{int(counts[i])}" for i in range(HISTOGRAM_BINS)]
    non_finite = int(data.numel() - finite.numel())
    if non_finite:
        lines.append(f"nan,nan,{non_finite}")
    return "\n".join(lines) + "\n"


class LoggerAdapter:
    """How one logger shows what is not a scalar. The module functions call a method only if its kind is in
    ``shows``; otherwise `cannot_show`, whose first call warns once, naming everything this logger cannot show.
    This base shows nothing but constants (through the logger's ``log_hyperparams``)."""

    shows: frozenset[str] = frozenset({"constants"})
    """What the logger shows natively: ``"histogram"``, ``"figure"``, ``"text"``, ``"constants"``, ``"layout"``."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger
        self._logger_ref: weakref.ReferenceType[Any] | None = None
        self.warned = False

    @property
    def logger(self) -> Any:
        """The logger this adapter writes to."""
        if self._logger_ref is None:
            return self._logger
        logger = self._logger_ref()
        if logger is None:
            raise ReferenceError(f"the logger of this {type(self).__name__} no longer exists")
        return logger

    def refers_to(self, logger: Any) -> bool:
        """Whether this adapter writes to ``logger`` (false once a weakly held logger is gone)."""
        held = self._logger if self._logger_ref is None else self._logger_ref()
        return held is logger

    def hold_logger_weakly(self) -> bool:
        """Refer to the logger weakly from now on (`adapter_for`'s registry must keep no logger alive); false if
        the logger cannot be weakly referenced (then it is still held)."""
        if self._logger_ref is not None:
            return True
        try:
            self._logger_ref = weakref.ref(self._logger)
        except TypeError:
            return False
        self._logger = None
        return True

    def cannot_show(self, trainer: pl.Trainer, what: str) -> None:
        """Warn once (per logger) that it gets the scalars only; not for the ``DummyLogger`` Lightning puts in place
        of the user's loggers under ``fast_dev_run`` (a smoke test shows nothing by design)."""
        if not self.warned and type(self.logger).__name__ != "DummyLogger":
            self.warned = True
            missing = sorted({"histogram", "figure", "text"} - self.shows)
            rank_zero_warn(
                trainer,
                f"lightning-stability: the logger {type(self.logger).__name__} receives the scalars only; it cannot "
                f"show {', '.join(missing)} (first: {what}). Add a TensorBoardLogger, CSVLogger, MLFlowLogger or "
                "WandbLogger to see them, or StabilityMonitor(save_margins=True) for the per-sample margins.",
            )

    def histogram(self, trainer: pl.Trainer, tag: str, values: Tensor, step: int) -> None:
        """A histogram of ``values`` at ``step``."""

    def figure(self, trainer: pl.Trainer, tag: str, figure: RenderedFigure, step: int) -> None:
        """A figure, rendered once for every logger, at ``step``."""

    def text(self, trainer: pl.Trainer, tag: str, text: str, step: int) -> None:
        """Markdown text at ``step``."""

    def constants(self, trainer: pl.Trainer, values: dict[str, Any], final: dict[str, float] | None) -> None:
        """Run constants at fit start (``final`` is ``None``), and with the final values at fit end."""
        self.logger.log_hyperparams(values)

    def layout(self, trainer: pl.Trainer, layout: dict[str, dict[str, list[str]]]) -> None:
        """A dashboard layout ``{category: {chart title: [tag regexes]}}`` (TensorBoard's Custom Scalars)."""

    def declare_final(self, trainer: pl.Trainer, params: dict[str, Any], names: list[str]) -> None:
        """Announce, before training, the final values that `constants` will report at the end (TensorBoard's
        HParams takes its columns from the first hyperparameter summary of a run)."""


class TensorBoardAdapter(LoggerAdapter):
    shows = frozenset({"histogram", "figure", "text", "constants", "layout"})

    def histogram(self, trainer: pl.Trainer, tag: str, values: Tensor, step: int) -> None:
        data = values.detach().cpu().to(torch.float64).numpy()
        self.logger.experiment.add_histogram(tag, data, global_step=step)

    def figure(self, trainer: pl.Trainer, tag: str, figure: RenderedFigure, step: int) -> None:
        self.logger.experiment.add_image(tag, figure.rgb, global_step=step, dataformats="HWC")

    def text(self, trainer: pl.Trainer, tag: str, text: str, step: int) -> None:
        self.logger.experiment.add_text(tag, text, global_step=step)

    def constants(self, trainer: pl.Trainer, values: dict[str, Any], final: dict[str, float] | None) -> None:
        if final is None:
            rows = "\n".join(f"| `{name}` | {value} |" for name, value in values.items())
            self.logger.experiment.add_text("stability/constants", f"| constant | value |\n|---|---|\n{rows}", 0)
        else:  # their own tags, one point each; HParams shows each metric's last value (see `declare_final`)
            self.logger.log_metrics(final, step=trainer.global_step)
            stopped = final.get("stability_final/stopped", 0.0) == 1.0
            tensorboard_file_writer(self.logger.experiment).add_summary(session_end(stopped), trainer.global_step)

    def declare_final(self, trainer: pl.Trainer, params: dict[str, Any], names: list[str]) -> None:
        writer = tensorboard_file_writer(self.logger.experiment)
        for summary in session_start(params, names):
            writer.add_summary(summary, 0)

    def layout(self, trainer: pl.Trainer, layout: dict[str, dict[str, list[str]]]) -> None:
        scalars = {
            category: {title: ["Multiline", tags] for title, tags in charts.items()}
            for category, charts in layout.items()
        }
        self.logger.experiment.add_custom_scalars(scalars)


class CSVAdapter(LoggerAdapter):
    """Files beside ``metrics.csv``: ``histograms/<tag>/step_<S>.csv``, ``figures/<tag>/step_<S>.png``,
    ``text/<tag>.md`` (one section per step); constants in ``hparams.yaml``."""

    shows = frozenset({"histogram", "figure", "text", "constants"})

    def _path(self, kind: str, tag: str, step: int, suffix: str) -> Path:
        path = Path(self.logger.log_dir) / kind / _file_name(tag) / f"step_{step:08d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def histogram(self, trainer: pl.Trainer, tag: str, values: Tensor, step: int) -> None:
        self._path("histograms", tag, step, ".csv").write_text(_histogram_csv(values))

    def figure(self, trainer: pl.Trainer, tag: str, figure: RenderedFigure, step: int) -> None:
        self._path("figures", tag, step, ".png").write_bytes(figure.png())

    def text(self, trainer: pl.Trainer, tag: str, text: str, step: int) -> None:
        path = Path(self.logger.log_dir) / "text" / f"{_file_name(tag)}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as file:
            file.write(f"## step {step}\n\n{text}\n\n")

    def constants(self, trainer: pl.Trainer, values: dict[str, Any], final: dict[str, float] | None) -> None:
        self.logger.log_hyperparams(values if final is None else {**values, **final})


class MLflowAdapter(LoggerAdapter):
    """Artifacts of the run: ``histograms/<tag>/step_<S>.csv``, ``figures/<tag>/step_<S>.png``,
    ``text/<tag>/step_<S>.md``; constants and final values as params."""

    shows = frozenset({"histogram", "figure", "text", "constants"})

    def _artifact(self, kind: str, tag: str, step: int, suffix: str) -> str:
        return f"{kind}/{_file_name(tag)}/step_{step:08d}{suffix}"

    def histogram(self, trainer: pl.Trainer, tag: str, values: Tensor, step: int) -> None:
        client, run_id = self.logger.experiment, self.logger.run_id
        client.log_text(run_id, _histogram_csv(values), self._artifact("histograms", tag, step, ".csv"))

    def figure(self, trainer: pl.Trainer, tag: str, figure: RenderedFigure, step: int) -> None:
        client, run_id = self.logger.experiment, self.logger.run_id
        client.log_image(run_id, figure.rgb, artifact_file=self._artifact("figures", tag, step, ".png"))

    def text(self, trainer: pl.Trainer, tag: str, text: str, step: int) -> None:
        client, run_id = self.logger.experiment, self.logger.run_id
        client.log_text(run_id, text, self._artifact("text", tag, step, ".md"))

    def page(self, trainer: pl.Trainer, name: str, page: str) -> None:  # the Stability page, an artifact <name>.html
        self.logger.experiment.log_text(self.logger.run_id, page, f"{name}.html")

    def constants(self, trainer: pl.Trainer, values: dict[str, Any], final: dict[str, float] | None) -> None:
        if final is None:
            self.logger.log_hyperparams(values)
        else:  # params are write-once in MLflow: the final values become metrics of their own
            self.logger.log_metrics(final, step=trainer.global_step)


class WandbAdapter(LoggerAdapter):
    """``wandb.Histogram``, ``wandb.Image`` and ``wandb.Html`` at the trainer's step; constants in the run config."""

    shows = frozenset({"histogram", "figure", "text", "constants"})

    def _log(self, tag: str, value: Any, step: int) -> None:
        self.logger.experiment.log({tag: value, "trainer/global_step": step})

    def histogram(self, trainer: pl.Trainer, tag: str, values: Tensor, step: int) -> None:
        import numpy as np
        import wandb

        data = values.detach().cpu().to(torch.float64)
        counts, edges = np.histogram(data[torch.isfinite(data)].numpy(), bins=HISTOGRAM_BINS)
        self._log(tag, wandb.Histogram(np_histogram=(counts.tolist(), edges.tolist())), step)

    def figure(self, trainer: pl.Trainer, tag: str, figure: RenderedFigure, step: int) -> None:
        import wandb

        self._log(tag, wandb.Image(figure.rgb), step)

    def text(self, trainer: pl.Trainer, tag: str, text: str, step: int) -> None:
        import wandb

        self._log(tag, wandb.Html(f"<pre>{html.escape(text)}</pre>"), step)

    def page(self, trainer: pl.Trainer, name: str, page: str) -> None:  # the Stability page, as it is (no wandb CSS)
        import wandb

        self._log(name, wandb.Html(page, inject=False), trainer.global_step)

    def constants(self, trainer: pl.Trainer, values: dict[str, Any], final: dict[str, float] | None) -> None:
        if final is None:
            self.logger.log_hyperparams(values)
        else:
            self.logger.experiment.summary.update(final)


_ADAPTERS: tuple[tuple[str, type[LoggerAdapter]], ...] = (
    ("TensorBoardLogger", TensorBoardAdapter),
    ("CSVLogger", CSVAdapter),
    ("MLFlowLogger", MLflowAdapter),
    ("WandbLogger", WandbAdapter),
)


_REGISTRY: dict[int, LoggerAdapter] = {}
"""Each logger's adapter, keyed by the logger's ``id`` (identity, whether or not the logger is hashable), for as
long as the logger lives: an adapter refers to its logger weakly and a finalizer drops the entry with the logger.
The adapter of a logger that cannot be weakly referenced holds it, so it is kept, and its ``id`` stays its own."""


def _register(logger: Any, adapter: LoggerAdapter) -> None:
    key = id(logger)
    _REGISTRY[key] = adapter
    if adapter.hold_logger_weakly():
        weakref.finalize(logger, _REGISTRY.pop, key, None).atexit = False


def adapter_for(logger: Any) -> LoggerAdapter:
    """The adapter of ``logger``, found by class name; the same one for as long as the logger lives, so its
    warning is given once. Kept in a registry of this module: nothing is set on the logger."""
    adapter = _REGISTRY.get(id(logger))
    if adapter is None or not adapter.refers_to(logger):
        names = _class_names(logger)
        kind = next((cls for name, cls in _ADAPTERS if name in names), LoggerAdapter)
        adapter = kind(logger)
        _register(logger, adapter)
    return adapter


def _adapters(trainer: pl.Trainer) -> list[LoggerAdapter]:
    if not trainer.is_global_zero:
        return []
    return [adapter_for(logger) for logger in trainer.loggers]


def _showing(trainer: pl.Trainer, kind: str, tag: str) -> list[LoggerAdapter]:
    """The adapters (rank zero) that show ``kind``; each other one is told once that it cannot."""
    showing = []
    for adapter in _adapters(trainer):
        if kind in adapter.shows:
            showing.append(adapter)
        else:
            adapter.cannot_show(trainer, f"{kind} {tag}")
    return showing


def log_histogram(trainer: pl.Trainer, tag: str, values: Tensor, step: int | None = None) -> None:
    """A histogram of ``values`` on every logger that shows histograms (rank zero), at ``step``."""
    step = trainer.global_step if step is None else step
    for adapter in _showing(trainer, "histogram", tag):
        adapter.histogram(trainer, tag, values, step)


def log_figure(
    trainer: pl.Trainer, tag: str, make_figure: Callable[[], Figure | RenderedFigure], step: int | None = None
) -> None:
    """``make_figure()`` on every logger that shows figures (rank zero), at ``step``; drawn only if one does, and
    rendered once for all of them (not at all if it returns a `RenderedFigure`, pixels composed already)."""
    showing = _showing(trainer, "figure", tag)
    if showing:
        step = trainer.global_step if step is None else step
        made = make_figure()
        figure = made if isinstance(made, RenderedFigure) else render(made)
        for adapter in showing:
            adapter.figure(trainer, tag, figure, step)


def log_text(trainer: pl.Trainer, tag: str, text: str, step: int | None = None) -> None:
    """``text`` (Markdown) on every logger that shows text (rank zero), at ``step``."""
    step = trainer.global_step if step is None else step
    for adapter in _showing(trainer, "text", tag):
        adapter.text(trainer, tag, text, step)


def log_constants(trainer: pl.Trainer, values: dict[str, Any]) -> None:
    """Values that do not change during a run (logged once, never as a chart)."""
    for adapter in _adapters(trainer):
        adapter.constants(trainer, values, None)


def log_final(trainer: pl.Trainer, values: dict[str, Any], final: dict[str, float]) -> None:
    """The run's constants with its final values (``final``), for comparing runs (TensorBoard's HParams)."""
    clean = {name: value for name, value in final.items() if isinstance(value, float) and math.isfinite(value)}
    for adapter in _adapters(trainer):
        adapter.constants(trainer, values, clean)


def declare_final(trainer: pl.Trainer, params: dict[str, Any], names: list[str]) -> None:
    """Before training: the hyperparameters ``params`` and the names of the final values to compare runs by."""
    for adapter in _adapters(trainer):
        adapter.declare_final(trainer, params, names)


def log_layout(trainer: pl.Trainer, layout: dict[str, dict[str, list[str]]]) -> None:
    """A dashboard layout ``{category: {chart: [tag regexes]}}`` on the loggers that have one."""
    for adapter in _adapters(trainer):
        if "layout" in adapter.shows:
            adapter.layout(trainer, layout)
