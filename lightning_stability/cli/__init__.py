"""The ``lightning-stability`` command.

Subcommands (``lightning-stability --help`` lists them, ``lightning-stability SUBCOMMAND --help`` shows each
one's options):

* ``fit``, ``validate``, ``test``, ``predict`` — Lightning's `LightningCLI`; after
  ``fit`` it prints where the logs are and the last check, and draws the report next to the logs;
* ``report`` — redraw the report PNG of a run from its saved margin files, with the data map and the blame grid;
  with ``-o FILE.html``, the Stability tab of every run under the folder as one self-contained page;
* ``samples`` — print the samples most likely mislabelled (docs/samples.md), with their statistics;
* ``check-data`` — look for small isolated clusters in the training inputs before training (docs/theory.md §9).

Examples::

    lightning-stability fit --config configs/mnist_abs_mlp.yaml
    lightning-stability report stability_logs/mnist_abs_mlp/version_0 -o report.png
    lightning-stability samples stability_logs/mnist_abs_mlp/version_0 -k 20
    lightning-stability check-data --config configs/mnist_abs_mlp.yaml -o check_data.png

Which Lightning distribution runs ``fit`` & co. is chosen in `lightning_stability.cli.distribution`; every error of
the command is reported as `lightning_stability.cli.errors` says (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from .distribution import choose_distribution
from .errors import CommandError, exit_with_error

__all__ = ["build_parser", "main"]

LIGHTNING_SUBCOMMANDS = {
    "fit": "train a model (LightningCLI); prints the last check and writes the report",
    "validate": "run one evaluation epoch over the validation set (LightningCLI)",
    "test": "run one evaluation epoch over the test set (LightningCLI)",
    "predict": "run inference on data (LightningCLI)",
}


def _lightning_cli(distribution: str = "pytorch_lightning") -> Any:
    """The package's `LightningCLI` subclass built on ``distribution``'s (see `choose_distribution`)."""
    import importlib

    from ..callbacks import StabilityMonitor
    from ..figures.report import make_report
    from ..figures.sample_report import make_sample_report

    lightning_cli = importlib.import_module(f"{distribution}.cli").LightningCLI

    class StabilityCLI(lightning_cli):  # type: ignore[misc, valid-type]
        """LightningCLI that, after ``fit``, prints where the logs are and writes the report next to them, and
        whose help lists the package's monitors among the known callbacks but not their internal bases."""

        def init_parser(self, **kwargs: Any) -> Any:
            kwargs.setdefault("formatter_class", _help_formatter())
            return super().init_parser(**kwargs)

        def after_fit(self) -> None:
            trainer = self.trainer
            # `trainer.log_dir` broadcasts from rank zero: every rank must ask, before the others return
            log_dir = Path(trainer.log_dir or trainer.default_root_dir)
            callbacks = getattr(trainer, "callbacks", [])  # set by the Trainer's callback connector
            monitors = [callback for callback in callbacks if isinstance(callback, StabilityMonitor)]
            margin_dirs = [monitor.margins_dir(trainer) for monitor in monitors]
            if not trainer.is_global_zero:
                return
            view = f"tensorboard --logdir {log_dir.parent} --samples_per_plugin images=100"
            print(f"[lightning-stability] logs: {log_dir}  (view with: {view})")
            for monitor, directory in zip(monitors, margin_dirs, strict=True):
                if monitor.last_report is not None:
                    report = monitor.last_report
                    print(
                        f"[lightning-stability] last check: training accuracy {report.accuracy:.4f}, loss "
                        f"{report.loss:.4f}, certified floors: loss {report.loss_floor:.4f}, Theorem A "
                        f"{report.theorem_a.floor:.4f}, Theorem B {report.theorem_b.floor:.4f}; "
                        f"instability events {monitor.instability_count}"
                    )
                    if monitor.stop_reason:
                        print(f"[lightning-stability] stopped: {monitor.stop_reason}")
                if directory is not None and directory.exists():
                    output = make_report(directory, log_dir / "report.png")
                    print(f"[lightning-stability] report: {output}")
                    for picture in make_sample_report(directory, output):
                        print(f"[lightning-stability] samples: {picture}")
            if monitors and monitors[0].last_report is not None:
                _write_page(trainer, monitors[0], log_dir, view)

    return StabilityCLI


def _write_page(trainer: Any, monitor: Any, log_dir: Path, view: str) -> None:
    """After ``fit``: the Stability tab's page beside ``report.png`` (``stability.html``), and where the tab is."""
    from ..stability_tab.page import write_page
    from ..stability_tab.verdict import stop_line

    stop = None
    if monitor.stop_reason:
        stop = f"{stop_line(monitor.stop_reason, trainer.current_epoch - 1, monitor.patience)}\n{monitor.stop_reason}"
    page = write_page(log_dir, log_dir / "stability.html", stop=stop)
    print(
        f"[lightning-stability] page: {page}  (the Stability tab: {view}, then open http://localhost:6006/#stability)"
    )


def _internal_class_paths() -> frozenset[str]:
    """The class paths of the package's internal callback bases, which are no callbacks to configure. jsonargparse
    lists every imported subclass of ``Callback`` except abstract ones and those with ``._`` in their path; these
    bases are neither (``Monitor`` has no method a subclass must implement), so the help leaves them out itself."""
    from ..callbacks.base import EpochMonitor, Monitor
    from ..distributions import CallbackBase

    return frozenset(f"{cls.__module__}.{cls.__qualname__}" for cls in (CallbackBase, Monitor, EpochMonitor))


def _help_formatter() -> type:
    """jsonargparse's help formatter, less the internal bases (`_internal_class_paths`) in the lists of known
    subclasses (``--trainer.callbacks``: ``known subclasses: a, b, c)``)."""
    from jsonargparse import DefaultHelpFormatter

    from ..lightning_internals import help_formatter_hiding

    return help_formatter_hiding(DefaultHelpFormatter, _internal_class_paths())


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "log_dir",
        help="a run's log directory, searched recursively for margins_epoch=*.pt; a folder of several runs "
        "(version_0, version_1, ...) gets one report per run, named after it (report_version_0.png, ...)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        help="PNG to write (default: LOG_DIR/report.png; OUTPUT_<run>.png per run), or FILE.html: the Stability "
        "tab as one self-contained page of every run under LOG_DIR (from its TensorBoard events or margin files)",
    )


SUSPECT_SCORES = ("aum", "confidence", "correctness", "last_margin", "forgetting_events", "variability")


def _add_samples_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "log_dir",
        help="a run's log directory (searched for samples.csv, else margin files); a folder of several runs "
        "(version_0, version_1, ...) gets one table per run, each headed with the run's directory",
    )
    parser.add_argument("-k", type=int, default=20, help="how many samples to print (default 20)")
    parser.add_argument(
        "--by",
        choices=SUSPECT_SCORES,
        default="aum",
        help="rank by the lowest aum (default), confidence, correctness or last_margin, or the most "
        "forgetting_events or variability",
    )


def _add_check_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--config", help="a LightningCLI config: its data module's training set, its model's first layer"
    )
    group.add_argument("--source", choices=("embedded", "idx", "torchvision"), help="MNIST source, no model")
    parser.add_argument("--data-dir", default="data", help="directory of the IDX files / torchvision download")
    parser.add_argument("--directions", type=int, default=256, help="random directions (default 256)")
    parser.add_argument("--principal", type=int, default=16, help="principal directions (default 16)")
    parser.add_argument("--max-mass", type=float, default=0.05, help="mass cap m of a cluster (default 0.05)")
    parser.add_argument(
        "--min-cluster-mass", type=float, default=None, help="smallest cluster mass m_min (default max(10/N, 0.005))"
    )
    parser.add_argument(
        "--resolution", type=float, default=0.1, help="resolution h, a fraction of each projection's spread"
    )
    parser.add_argument("--dilation", type=float, default=2.0, help="dilation Λ > 1 (default 2)")
    parser.add_argument("-o", "--output", default="check_data.png", help="PNG of the witness samples")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: every subcommand with its help (LightningCLI's ones parse their own options)."""
    parser = argparse.ArgumentParser(
        prog="lightning-stability",
        description="Train a classifier with the stability monitors, and inspect the results.",
        epilog="`lightning-stability SUBCOMMAND --help` shows a subcommand's options; fit/validate/test/predict "
        "take every LightningCLI option (e.g. --config configs/mnist_abs_mlp.yaml).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    for name, description in LIGHTNING_SUBCOMMANDS.items():
        lightning = subcommands.add_parser(name, help=description, add_help=False)
        lightning.add_argument("lightning_args", nargs=argparse.REMAINDER)
    report = subcommands.add_parser(
        "report",
        help="redraw a run's report PNG from its saved margin files",
        description="Plot accuracy, certified floors, condition constants and margin distributions of a run.",
    )
    _add_report_options(report)
    samples = subcommands.add_parser(
        "samples",
        help="print the samples most likely mislabelled, with their per-sample statistics",
        description="Rank a run's training samples by a per-sample score (docs/samples.md) and print the top k.",
    )
    _add_samples_options(samples)
    check_data = subcommands.add_parser(
        "check-data",
        help="look for small isolated clusters in the training inputs (docs/theory.md §9)",
        description="Find small isolated clusters in the training inputs (docs/theory.md §9), before training.",
    )
    _add_check_data_options(check_data)
    return parser


def _report(args: argparse.Namespace) -> int:
    from ..figures.report import make_report
    from ..figures.sample_report import make_sample_report
    from ..run_folders import find_runs

    if args.output and Path(args.output).suffix.lower() in (".html", ".htm"):
        from ..stability_tab.page import write_page

        # the Stability tab as one page: every run under LOG_DIR (a selector), from its events or margin files
        print(f"[lightning-stability] page of {args.log_dir}: {write_page(args.log_dir, args.output)}")
        return 0
    runs = find_runs(args.log_dir, need_margins=True)
    output = Path(args.output) if args.output else Path(args.log_dir) / "report.png"
    for run in runs:
        # several runs: one picture per run, named after it (report_version_0.png, ...), never one merged run
        picture = output if len(runs) == 1 else output.with_name(f"{output.stem}_{run.name}{output.suffix or '.png'}")
        written = make_report(run.directory, picture)
        print(f"[lightning-stability] report of {run.directory}: {written}")
        try:
            pictures = make_sample_report(run.directory, written)
        except ValueError as error:  # margin files of an older version, without predicted classes
            print(f"[lightning-stability] no data map: {error}")
            continue
        for path in pictures:
            print(f"[lightning-stability] samples: {path}")
    return 0


def _samples(args: argparse.Namespace) -> int:
    from ..figures.sample_report import run_dynamics
    from ..run_folders import find_runs

    if args.k < 1:
        raise CommandError(f"-k must be a positive integer, got {args.k}")
    for number, run in enumerate(find_runs(args.log_dir)):
        if number:
            print()
        _print_suspects(run_dynamics(run.directory), args, run.directory)
    return 0


def _print_suspects(dynamics: Any, args: argparse.Namespace, run: Path) -> None:
    suspects = dynamics.suspects(min(args.k, len(dynamics)), by=args.by)
    print(
        f"[lightning-stability] {len(suspects)} of {len(dynamics)} samples, ranked by "
        f"{'most' if args.by in ('forgetting_events', 'variability') else 'lowest'} {args.by}, run {run}:"
    )
    header = (
        f"{'index':>7} {'target':>6} {'pred':>5} {'aum':>9} {'last δ':>9} {'conf':>6} {'var':>6} {'correct':>7} "
        f"{'forgot':>6} {'learned':>7}"
    )
    print(header)
    for row in range(len(suspects)):
        learned = int(suspects.first_learned_check[row])
        print(
            f"{int(suspects.index[row]):>7} {int(suspects.target[row]):>6} {int(suspects.predicted[row]):>5} "
            f"{float(suspects.aum[row]):>9.4f} {float(suspects.last_margin[row]):>9.4f} "
            f"{float(suspects.confidence[row]):>6.3f} {float(suspects.variability[row]):>6.3f} "
            f"{float(suspects.correctness[row]):>7.3f} {int(suspects.forgetting_events[row]):>6} "
            f"{'never' if learned < 0 else learned:>7}"
        )


def _check_data(args: argparse.Namespace) -> int:
    import torch

    from ..data_check import data_check_table, first_linear_rows
    from ..figures.data_check import witness_figure
    from ..theory import data_clusters

    extra = None
    if args.config:
        cli = _lightning_cli(choose_distribution(["--config", args.config]))(args=["--config", args.config], run=False)
        datamodule, model = cli.datamodule, cli.model
        extra = first_linear_rows(model)
    else:
        from ..example import MNISTDataModule

        datamodule = MNISTDataModule(source=args.source, data_dir=args.data_dir)
    datamodule.setup("fit")
    dataset = datamodule.train_dataloader().dataset
    inputs = dataset.tensors[0] if hasattr(dataset, "tensors") else dataset
    report = data_clusters(
        inputs,
        n_random=args.directions,
        n_principal=args.principal,
        extra_directions=extra,
        dilation=args.dilation,
        max_mass=args.max_mass,
        min_cluster_mass=args.min_cluster_mass,
        resolution=args.resolution,
    )
    print(data_check_table(report))
    if isinstance(inputs, torch.Tensor):
        print(f"[lightning-stability] witness samples: {witness_figure(report, inputs, args.output)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lightning-stability`` console script.

    Every error of ``report`` and ``samples`` (and the distribution checks of ``fit``) is one line on stderr and
    exit status 2, as argparse's usage errors are (``SystemExit(2)``); LightningCLI reports its own errors.
    """
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        # LightningCLI parses (and documents, with --help) every option of these itself
        try:
            distribution = choose_distribution(argv[1:])
        except CommandError as error:
            exit_with_error(argv[0], str(error))
        cli_class = _lightning_cli(distribution)
        cli_class(  # args=None: LightningCLI reads sys.argv itself (given both, it warns)
            args=None if from_command_line else argv,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
        )
        return 0
    args = build_parser().parse_args(argv)
    commands = {"report": _report, "samples": _samples, "check-data": _check_data}
    try:
        return commands[args.subcommand](args)
    except (CommandError, OSError, ValueError) as error:  # missing/empty folders, unreadable or odd files
        exit_with_error(args.subcommand, str(error))
    except Exception as error:  # anything else: still one line, with its kind, so that it can be reported
        exit_with_error(args.subcommand, f"{type(error).__name__}: {error}")
