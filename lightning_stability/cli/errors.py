"""How the ``lightning-stability`` command reports its errors: one line on stderr and exit status 2, as argparse
does for usage errors (no traceback)."""

from __future__ import annotations

import sys
from typing import NoReturn

__all__ = ["CommandError", "exit_with_error"]


class CommandError(Exception):
    """An error of the command: printed as one line on stderr, exit status 2 (no traceback)."""


def exit_with_error(subcommand: str | None, message: str) -> NoReturn:
    """Print ``message`` on one line of stderr, as argparse does for usage errors, and exit with status 2."""
    line = " ".join(str(message).split())
    print(f"lightning-stability{' ' + subcommand if subcommand else ''}: error: {line}", file=sys.stderr)
    raise SystemExit(2)
