"""The ``lightning-stability`` command.

Subcommands (``lightning-stability --help`` lists them, ``lightning-stability SUBCOMMAND --help`` shows each
one's options):

* ``fit``, ``validate``, ``test``, ``predict`` — Lightning's `LightningCLI`; after
  ``fit`` it prints where the logs are and the last check, and draws the report next to the logs;
* ``report`` — redraw the report PNG of a run from its saved margin files, with the data map and the blame grid;
* ``samples`` — print the samples most likely mislabelled (docs/samples.md), with their statistics;
* ``check-data`` — look for small isolated clusters in the training inputs before training (docs/theory.md §9).

Examples::

    lightning-stability fit --config configs/mnist_abs_mlp.yaml
    lightning-stability report stability_logs/mnist_abs_mlp/version_0 -o report.png
    lightning-stability samples stability_logs/mnist_abs_mlp/version_0 -k 20
    lightning-stability check-data --config configs/mnist_abs_mlp.yaml -o check_data.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import __version__

__all__ = ["build_parser", "main"]

LIGHTNING_SUBCOMMANDS = {
    "fit": "train a model (LightningCLI); prints the last check and writes the report",
    "validate": "run one evaluation epoch over the validation set (LightningCLI)",
    "test": "run one evaluation epoch over the test set (LightningCLI)",
    "predict": "run inference on data (LightningCLI)",
}


def _lightning_cli() -> Any:
    from pytorch_lightning.cli import LightningCLI

    from .callbacks import StabilityMonitor
    from .figures.report import make_report
    from .figures.sample_report import make_sample_report

    class StabilityCLI(LightningCLI):
        """LightningCLI that, after ``fit``, prints where the logs are and writes the report next to them."""

        def after_fit(self) -> None:
            trainer = self.trainer
            # `trainer.log_dir` broadcasts from rank zero: every rank must ask, before the others return
            log_dir = Path(trainer.log_dir or trainer.default_root_dir)
            callbacks = getattr(trainer, "callbacks", [])  # set by the Trainer's callback connector
            monitors = [callback for callback in callbacks if isinstance(callback, StabilityMonitor)]
            margin_dirs = [monitor.margins_dir(trainer) for monitor in monitors]
            if not trainer.is_global_zero:
                return
            print(f"[lightning-stability] logs: {log_dir}  (view with: tensorboard --logdir {log_dir.parent})")
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

    return StabilityCLI


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log_dir", help="a run's log directory (searched recursively for margins_epoch=*.pt)")
    parser.add_argument("-o", "--output", default=None, help="PNG to write (default: LOG_DIR/report.png)")


SUSPECT_SCORES = ("aum", "confidence", "correctness", "last_margin", "forgetting_events", "variability")


def _add_samples_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log_dir", help="a run's log directory (searched for samples.csv, else margin files)")
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
    from .figures.report import make_report
    from .figures.sample_report import make_sample_report

    output = make_report(args.log_dir, args.output or Path(args.log_dir) / "report.png")
    print(f"[lightning-stability] report: {output}")
    try:
        pictures = make_sample_report(args.log_dir, output)
    except ValueError as error:  # margin files of an older version, without predicted classes
        print(f"[lightning-stability] no data map: {error}")
        return 0
    for picture in pictures:
        print(f"[lightning-stability] samples: {picture}")
    return 0


def _samples(args: argparse.Namespace) -> int:
    from .figures.sample_report import run_dynamics

    if args.k < 1:
        raise SystemExit(f"lightning-stability samples: -k must be a positive integer, got {args.k}.")
    dynamics = run_dynamics(args.log_dir)
    suspects = dynamics.suspects(min(args.k, len(dynamics)), by=args.by)
    print(
        f"[lightning-stability] {len(suspects)} of {len(dynamics)} samples, ranked by "
        f"{'most' if args.by in ('forgetting_events', 'variability') else 'lowest'} {args.by}:"
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
    return 0


def _check_data(args: argparse.Namespace) -> int:
    import torch

    from .data_check import data_check_table, first_linear_rows
    from .figures.data_check import witness_figure
    from .theory import data_clusters

    extra = None
    if args.config:
        cli = _lightning_cli()(args=["--config", args.config], run=False)
        datamodule, model = cli.datamodule, cli.model
        extra = first_linear_rows(model)
    else:
        from .example import MNISTDataModule

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
    """Entry point of the ``lightning-stability`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        # LightningCLI parses (and documents, with --help) every option of these itself
        cli_class = _lightning_cli()
        cli_class(args=argv, save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False)
        return 0
    args = build_parser().parse_args(argv)
    if args.subcommand == "report":
        return _report(args)
    if args.subcommand == "samples":
        return _samples(args)
    if args.subcommand == "check-data":
        return _check_data(args)
    raise AssertionError(f"unhandled subcommand {args.subcommand!r}")  # argparse only admits the ones above


if __name__ == "__main__":
    sys.exit(main())
