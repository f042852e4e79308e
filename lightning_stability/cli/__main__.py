"""``python -m lightning_stability.cli``: the ``lightning-stability`` command."""

import sys

from . import main

sys.exit(main())
