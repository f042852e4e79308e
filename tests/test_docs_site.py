"""The documentation site as a reader gets it: built once with ``mkdocs build --strict`` into a temporary folder.

Its maths must render without network: the KaTeX that renders the formulas ships with the site
(docs/vendor/katex/), no page loads a script or stylesheet from another host, and every page with formulas loads
the renderer. The API page lists the public API with the attributes users read. (No browser is started here; see
docs/vendor/katex/SOURCE.txt for the renderer's files.)
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None,
    reason="mkdocs/mkdocstrings-python are not installed (they come with the dev extra: pip install -e '.[dev]')",
)

ROOT = Path(__file__).resolve().parents[1]
KATEX_JS = "vendor/katex/katex.min.js"
KATEX_CSS = "vendor/katex/katex.min.css"
KATEX_INIT = "javascripts/katex.js"


class _Page(HTMLParser):
    """The script and stylesheet URLs of a page, and whether it holds arithmatex formulas."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.links: list[str] = []
        self.formulas = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "script" and values.get("src"):
            self.scripts.append(values["src"])
        if tag == "link" and values.get("href"):
            self.links.append(values["href"])
        if tag in ("span", "div") and "arithmatex" in values.get("class", "").split():
            self.formulas += 1


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def _pages(site: Path) -> dict[str, _Page]:
    pages = {}
    for path in sorted(site.rglob("*.html")):
        parser = _Page()
        parser.feed(path.read_text(encoding="utf-8"))
        pages[path.relative_to(site).as_posix()] = parser
    return pages


def _target(site: Path, page: str, url: str) -> Path:
    """The file of the site that ``url`` (as written in ``page``) points to."""
    path = urlsplit(urljoin("/" + page, url)).path
    return site / (path + "index.html" if path.endswith("/") else path).lstrip("/")


def test_no_script_or_stylesheet_from_another_host(site: Path) -> None:
    pages = _pages(site)
    assert len(pages) >= 10
    foreign = [
        (page, url)
        for page, parsed in pages.items()
        for url in parsed.scripts + parsed.links
        if urlsplit(url).scheme or urlsplit(url).netloc
    ]
    assert foreign == []


def test_the_site_ships_the_maths_renderer(site: Path) -> None:
    assert (site / KATEX_JS).stat().st_size > 100_000
    assert (site / KATEX_INIT).is_file()
    css = (site / KATEX_CSS).read_text(encoding="utf-8")
    fonts = re.findall(r"url\((fonts/[^)]+\.woff2)\)", css)
    assert len(fonts) >= 15
    missing = [font for font in fonts if not (site / "vendor/katex" / font).is_file()]
    assert missing == []
    assert "MIT" in (ROOT / "docs/vendor/katex/LICENSE").read_text(encoding="utf-8")
    assert not list(site.rglob("*.py")), "build code (the Griffe extension) must stay out of the site"


def test_every_page_with_maths_loads_the_renderer(site: Path) -> None:
    pages = _pages(site)
    with_maths = {page: parsed for page, parsed in pages.items() if parsed.formulas}
    assert {"theory/index.html", "dynamics/index.html"} <= set(with_maths)
    assert with_maths["theory/index.html"].formulas > 300
    for page, parsed in with_maths.items():
        scripts = {_target(site, page, url) for url in parsed.scripts}
        links = {_target(site, page, url) for url in parsed.links}
        assert site / KATEX_JS in scripts, page
        assert site / KATEX_INIT in scripts, page
        assert site / KATEX_CSS in links, page
        for url in parsed.scripts + parsed.links:
            assert _target(site, page, url).is_file(), (page, url)


def test_lists_after_display_maths_are_lists(site: Path) -> None:
    """A ``* item`` after an indented ``$$`` block needs a blank line before it, or it becomes paragraph text."""
    for page in ("theory/index.html", "dynamics/index.html"):
        html = (site / page).read_text(encoding="utf-8")
        stray = [line for line in html.splitlines() if re.match(r"\s*[*-] (<strong>|[A-Za-z$])", line)]
        assert stray == [], page
    theory = (site / "theory/index.html").read_text(encoding="utf-8")
    notation = theory[theory.index('id="1-notation"') : theory.index("Everything is computed in float64")]
    assert notation.count("<li>") == 7


def test_api_page_lists_the_public_api_with_its_attributes(site: Path) -> None:
    html = (site / "api/index.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="(lightning_stability[^"]*)"', html))
    for public in ("StabilityMonitor", "SharpnessMonitor", "ParametrizationMonitor", "GradientFlowMonitor"):
        assert f"lightning_stability.{public}" in ids
    assert "lightning_stability.StabilityMonitor.sample_dynamics" in ids
    internal = [
        name
        for name in ids
        if name.rsplit(".", 1)[-1] in {"setup", "owns_metric", "metric_period", "validate_setup", "run_check"}
        or ".callbacks." in name
    ]
    assert internal == []
    text = re.sub(r"<[^>]+>", " ", html)
    section = text[text.index("Attributes:") :]
    for attribute in (
        "last_report",
        "last_metrics",
        "last_cost",
        "stop_reason",
        "checks_done",
        "instability_count",
        "instability_epochs",
        "weights_source",
    ):
        assert attribute in section, attribute
