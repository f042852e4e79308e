"""The Stability page: ``lightning-stability report LOG_DIR -o FILE.html``, the page at fit end, inert data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from lightning_stability.cli import _write_page, main
from lightning_stability.stability_tab.frontend import static_text
from lightning_stability.stability_tab.page import bundle

from .conftest import MARKUP_RUN

SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name (createElementNS), never fetched
DATA = re.compile(r'<script type="application/json" id="stability-data">(.*?)</script>', re.DOTALL)


def page_data(path: Path) -> tuple[str, dict]:
    text = path.read_text(encoding="utf-8")
    (data,) = DATA.findall(text)
    return text, json.loads(data)


def test_report_writes_one_inert_page_of_every_run(
    stability_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "stability.html"
    assert main(["report", str(stability_logs), "-o", str(output)]) == 0
    assert str(output) in capsys.readouterr().out
    text, data = page_data(output)
    views = {view["name"]: view for view in data["runs"]}
    assert set(views) == {"demo/version_0", "demo/version_1", f"demo/{MARKUP_RUN}"}
    assert views["demo/version_0"]["verdict"]["stop"] == "training stopped at epoch 10: instability (patience 1)"
    assert views["demo/version_0"]["checks"][-1]["accuracy"] == pytest.approx(59 / 105, rel=1e-6)
    # inert: no markup of a run in the HTML, no external resource, only the two scripts, the shipped module inlined
    assert "<img" not in text and MARKUP_RUN not in text
    assert not re.search(
        r"https?://|<link|\ssrc=|@import|url\(", text.replace("img src=x onerror", "img").replace(SVG_NAMESPACE, "")
    )
    assert re.findall(r"<script[^>]*>", text) == [
        '<script type="application/json" id="stability-data">',
        '<script type="module">',
    ]
    assert bundle() in text and "function lineChart(" in text and "export " not in bundle()


def test_page_from_margin_files_alone(stability_logs: Path, tmp_path: Path) -> None:
    shutil.copytree(stability_logs / "demo" / "version_0" / "margins", tmp_path / "run" / "margins")
    output = tmp_path / "page.html"
    assert main(["report", str(tmp_path / "run"), "-o", str(output)]) == 0
    (view,) = page_data(output)[1]["runs"]
    assert view["source"] == "margin files" and view["num_samples"] == 105
    assert [check["epoch"] for check in view["checks"] if check["event"]] == [10]
    assert round(view["checks"][-1]["forgotten"] * 105) == 41 and view["checks"][-1]["cost"] is None
    assert view["verdict"]["headline"].startswith("instability at epoch 10: loss 0.684 → 0.679")


def test_fit_command_writes_the_page_with_the_stop(
    stability_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "version_1"
    shutil.copytree(stability_logs / "demo" / "version_1", run)
    reason = "the model's class scores are not finite (NaN or inf) for 3 sample(s) after epoch 1 (samples 1, 2, 3)"
    monitor = SimpleNamespace(stop_reason=reason, patience=1)
    _write_page(SimpleNamespace(current_epoch=2), monitor, run, "tensorboard --logdir x")
    printed = capsys.readouterr().out
    assert f"page: {run / 'stability.html'}" in printed and "http://localhost:6006/#stability" in printed
    (view,) = page_data(run / "stability.html")[1]["runs"]
    assert view["verdict"]["stop"] == "training stopped at epoch 1: non-finite outputs"
    assert view["stop_detail"] == reason and view["name"] == "version_1"


def test_unknown_folder_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "x.html")])
    assert exit_info.value.code == 2 and "margin files" in capsys.readouterr().err


def test_bundle_is_the_shipped_modules() -> None:
    for name in ("chart.js", "tables.js", "style.js", "index.js"):
        body = [line for line in static_text(name).splitlines() if line and not line.startswith("import ")]
        assert all(line.removeprefix("export ") in bundle() for line in body)
