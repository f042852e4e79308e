"""The tab and the page rendered by headless Chromium (Debian's ``chromium``; `.ci/run` installs it): the verdict,
the event's epoch, the stop and the last accuracy are in the DOM, a run named as markup shows as text. No network:
the page is a file, the tab TensorBoard on 127.0.0.1, every other host unresolvable."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lightning_stability.cli import main

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no `chromium` on PATH: install Debian's (apt-get install -y chromium; .ci/run does where it is missing) "
    "to render the Stability tab and page headless",
)

HEADLINE = "instability at epoch 10: loss 0.684 → 0.679 while accuracy 0.95238 → 0.56190 (41 samples)"
STOP = "training stopped at epoch 10: instability (patience 1)"


def dump_dom(url: str, profile: Path) -> str:
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=30000",
        "--window-size=1280,800",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def check_dom(dom: str) -> None:
    assert HEADLINE in dom and STOP in dom
    assert "0.56190" in dom  # the last accuracy, in the table (5 decimals)
    assert ">instability 10<" in dom  # the event's mark on the chart, at epoch 10
    assert "samples to blame at epoch 10" in dom and "Condition B witness interval" in dom
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom and "<img" not in dom  # a run's name is text


def test_page_renders_offline(stability_logs: Path, tmp_path: Path) -> None:
    output = tmp_path / "page.html"
    assert main(["report", str(stability_logs), "-o", str(output)]) == 0
    check_dom(dump_dom(output.as_uri() + "#run=demo%2Fversion_0", tmp_path / "profile"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tab_renders_in_tensorboard(stability_logs: Path, tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(stability_logs), "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--load_fast", "false"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/data/plugins_listing", timeout=5) as response:
                    if b'"stability"' in response.read():
                        break
            except OSError:
                pass
            assert server.poll() is None, f"tensorboard exited: {server.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "tensorboard did not answer within 60 s"
            time.sleep(0.5)
        check_dom(dump_dom(f"{base}/data/plugin_entry.html?name=stability#run=demo%2Fversion_0", tmp_path / "profile"))
    finally:
        server.terminate()
        server.wait(timeout=30)
