"""The ``lightning-stability`` command: ``fit``/``validate`` (LightningCLI), ``report``, ``check-data``.

Examples::

    lightning-stability fit --config configs/mnist_abs_mlp.yaml
    lightning-stability report stability_logs/mnist_abs_mlp/version_0 -o report.png
    lightning-stability check-data --config configs/mnist_abs_mlp.yaml -o check_data.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _lightning_cli():
    from pytorch_lightning.cli import LightningCLI

    from .callbacks import StabilityMonitor
    from .report import make_report

    class StabilityCLI(LightningCLI):
        """LightningCLI that, after ``fit``, prints where the logs are and writes the report next to them."""

        def after_fit(self) -> None:
            trainer = self.trainer
            # `trainer.log_dir` broadcasts from rank zero: every rank must ask, before the others return
            log_dir = Path(trainer.log_dir or trainer.default_root_dir)
            monitors = [callback for callback in trainer.callbacks if isinstance(callback, StabilityMonitor)]
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

    return StabilityCLI


def _report(argv: list[str]) -> int:
    from .report import make_report

    parser = argparse.ArgumentParser(
        prog="lightning-stability report",
        description="Plot accuracy, certified floors, condition constants and margin distributions of a run.",
    )
    parser.add_argument("log_dir", help="a run's log directory (searched recursively for margins_epoch=*.pt)")
    parser.add_argument("-o", "--output", default=None, help="PNG to write (default: LOG_DIR/report.png)")
    args = parser.parse_args(argv)
    output = make_report(args.log_dir, args.output or Path(args.log_dir) / "report.png")
    print(f"[lightning-stability] report: {output}")
    return 0


def _check_data(argv: list[str]) -> int:
    from .check_data import first_linear_rows, format_report, witness_figure
    from .theory import data_clusters

    parser = argparse.ArgumentParser(
        prog="lightning-stability check-data",
        description="Find small isolated clusters in the training inputs (THEORY.md §9), before training.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--config", help="a LightningCLI config: its data module's training set, its model's first layer"
    )
    group.add_argument("--source", choices=("embedded", "idx", "torchvision"), help="MNIST source, no model")
    parser.add_argument("--data-dir", default="data", help="directory of the IDX files / torchvision download")
    parser.add_argument("--directions", type=int, default=256, help="random directions (default 256)")
    parser.add_argument("--principal", type=int, default=16, help="principal directions (default 16)")
    parser.add_argument("--max-mass", type=float, default=0.05)
    parser.add_argument("--min-cluster-mass", type=float, default=None)
    parser.add_argument("--resolution", type=float, default=0.1)
    parser.add_argument("--dilation", type=float, default=2.0)
    parser.add_argument("-o", "--output", default="check_data.png", help="PNG of the witness samples")
    args = parser.parse_args(argv)

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
    print(format_report(report))
    if isinstance(inputs, __import__("torch").Tensor):
        print(f"[lightning-stability] witness samples: {witness_figure(report, inputs, args.output)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lightning-stability`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report":
        return _report(argv[1:])
    if argv and argv[0] == "check-data":
        return _check_data(argv[1:])
    cli_class = _lightning_cli()
    cli_class(args=argv, save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
