"""Train the MNIST absolute-value MLP with the StabilityMonitor through LightningCLI.

    python examples/train_mnist.py fit --config configs/mnist_abs_mlp.yaml

Same as ``lightning-stability fit --config configs/mnist_abs_mlp.yaml``.
"""

import sys

from lightning_stability.cli import main

if __name__ == "__main__":
    sys.exit(main())
