"""The Stability tab as one self-contained HTML page (``lightning-stability report LOG_DIR -o FILE.html``, and the
page the ``fit`` command and the `StabilityMonitor` write at fit end).

The page is inert data plus the shipped script: the runs' views as JSON in a ``<script type="application/json">``
(every ``<``, ``>`` and ``&`` escaped, so no text of a run can close it) and the same ES modules the tab loads
(`frontend.STATIC`), joined into one inline module (`bundle`). No network, no external script, style or font.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from ..run_folders import find_runs
from .frontend import STATIC, json_text, static_text
from .sources import offline_provider, read_run, run_directories, run_margin_files
from .view import run_view

__all__ = ["DATA_ELEMENT_ID", "bundle", "collect_views", "page_html", "write_page"]

DATA_ELEMENT_ID = "stability-data"
"""The id of the page's ``<script type="application/json">`` element that holds the views."""

_IMPORT = re.compile(r'^import \{[^}]*\} from "\./([a-z_]+\.js)";\n', re.MULTILINE)
_EXPORT = re.compile(r"^export (?=(async )?function |const |let |class )", re.MULTILINE)


def bundle() -> str:
    """The frontend's modules as one module: each module after those it imports, its ``import { … } from
    "./x.js";`` lines removed and ``export`` dropped from its declarations (the modules' top-level names are
    distinct, so nothing collides).

    Raises:
        ValueError: if a module imports anything else or holds ``</script``.
    """
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path or name not in STATIC:
            raise ValueError(f"the frontend module {name} is not one of {STATIC} or imports itself")
        for imported in _IMPORT.findall(static_text(name)):
            visit(imported, (*path, name))
        order.append(name)

    visit("index.js", ())
    parts = []
    for name in order:
        text = _EXPORT.sub("", _IMPORT.sub("", static_text(name)))
        if re.search(r"^\s*import\b|</script", text, re.IGNORECASE | re.MULTILINE):
            raise ValueError(f"{name}: an import the page cannot inline, or '</script'")
        parts.append(f"// ---- {name}\n{text}")
    return "\n".join(parts)


def _inert_json(value: Any) -> str:
    """JSON that no text inside can end or turn into markup: ``<``, ``>`` and ``&`` as ``\\u`` escapes."""
    return json_text(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_html(views: list[dict[str, Any]], title: str) -> str:
    """The page: the views as inert JSON, then the bundled frontend, which renders them (``render()``)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        f'<script type="application/json" id="{DATA_ELEMENT_ID}">{_inert_json({"runs": views})}</script>\n'
        f'<script type="module">\n{bundle()}\nrender();\n</script>\n'
        "</body>\n</html>\n"
    )


def collect_views(log_dir: str | Path, stop: str | None = None) -> list[dict[str, Any]]:
    """The views of the runs under ``log_dir``: each run of its TensorBoard event files with checks of the monitor,
    else (no event files) each run of its margin files (`lightning_stability.run_folders.find_runs`). ``stop``
    is the stop line of a single run whose events lack it (the ``fit`` command's, from the monitor).

    Raises:
        ValueError: if no run under ``log_dir`` holds a check of the `StabilityMonitor`.
    """
    from tensorboard import context  # type: ignore[import-untyped]

    root = Path(log_dir)
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory (pass a run's log directory)")
    directories = run_directories(root)
    views = []
    if directories:
        provider, ctx = offline_provider(root), context.RequestContext()
        for name, directory in directories.items():
            scalars, texts, num_samples = read_run(provider, ctx, "", name)
            if stop is not None and len(directories) == 1 and not texts.get("stability/stop"):
                texts["stability/stop"] = [(0, stop)]
            files = run_margin_files(directory, root)
            if scalars.get("stability/accuracy") or files:
                shown = root.resolve().name if name == "." else name  # the log directory itself: its own name
                views.append(run_view(shown, scalars, texts, files, num_samples))
    else:
        for run in find_runs(root, need_margins=True):
            texts = {"stability/stop": [(0, stop)]} if stop is not None else {}
            views.append(run_view(run.name, {}, texts, run_margin_files(run.directory, root)))
    if not views:
        raise ValueError(
            f"no run under {root} holds a check of the StabilityMonitor (no stability/accuracy in its TensorBoard "
            "events, no margin files)"
        )
    return views


def write_page(log_dir: str | Path, output: str | Path, stop: str | None = None) -> Path:
    """Write the page of the runs under ``log_dir`` (`collect_views`) to ``output``; returns its path."""
    views = collect_views(log_dir, stop)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    names = ", ".join(view["name"] for view in views)
    output.write_text(page_html(views, f"Stability: {names}"), encoding="utf-8")
    return output
