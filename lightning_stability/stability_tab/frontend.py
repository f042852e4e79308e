"""The frontend the Stability tab serves and the HTML page inlines: hand-written ES modules shipped in
``lightning_stability/stability_tab/static/`` (no build step), and the JSON they read."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["STATIC", "json_text", "static_text"]

STATIC = ("index.js", "chart.js", "tables.js", "style.js")
"""The frontend's ES modules (``index.js`` imports the others and exports ``render``)."""


def static_text(name: str) -> str:
    """The shipped frontend module ``name`` (one of `STATIC`).

    Raises:
        KeyError: for any other name (a request never names a file).
    """
    if name not in STATIC:
        raise KeyError(name)
    return resources.files(__package__).joinpath("static").joinpath(name).read_text(encoding="utf-8")


def json_text(value: Any) -> str:
    """``value`` as JSON (no NaN: the views hold ``None`` instead, and a NaN here is an error)."""
    return json.dumps(value, allow_nan=False, ensure_ascii=False)
