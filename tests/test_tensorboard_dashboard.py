"""What TensorBoard itself shows of a run: a real TensorBoard server (loopback only) on the log directory of a short
fit with the StabilityMonitor, read back through its HTTP data API (the routes its frontend uses).

Routes (tensorboard/backend/application.py and the ``get_plugin_apps`` of tensorboard/plugins/*):
``/data/plugins_listing``, ``/data/plugin/scalars/tags``, ``/data/plugin/custom_scalars/layout``,
``/data/plugin/histograms/tags``, ``/data/plugin/images/tags``, ``/data/plugin/images/images``,
``/data/plugin/images/individualImage``, ``/data/plugin/text/tags``, ``/data/plugin/text/text``,
``/data/plugin/hparams/experiment`` and ``/data/plugin/hparams/session_groups`` (POST, a JSON request proto).
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from lightning_stability import StabilityMonitor

from .helpers import SMALL_GRID, fit

pytest.importorskip("matplotlib")

HEADLINE = ["stability/accuracy", "stability/loss_floor", "stability/theorem_a/floor", "stability/theorem_b/floor"]
FINAL = [
    "stability_final/accuracy",
    "stability_final/loss_floor",
    "stability_final/theorem_a_floor",
    "stability_final/theorem_b_floor",
    "stability_final/instability_count",
    "stability_final/stopped",
    "stability_final/max_accuracy_drop",
]
RUN = "run/version_0"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TensorBoard:
    """A client of a running TensorBoard's data API."""

    def __init__(self, base: str) -> None:
        self.base = base

    def raw(self, route: str, **query: str) -> bytes:
        url = f"{self.base}/data/{route}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    def get(self, route: str, **query: str) -> Any:
        return json.loads(self.raw(route, **query))

    def post(self, route: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.base}/data/{route}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def tensorboard(tmp_path_factory) -> Iterator[TensorBoard]:
    """Two epochs of a tiny MLP with StabilityMonitor(log_figure=True) logged by a TensorBoardLogger, and a
    TensorBoard server on 127.0.0.1 that has loaded them (killed at the end)."""
    root = tmp_path_factory.mktemp("tensorboard")
    pl.seed_everything(0)
    monitor = StabilityMonitor(log_figure=True, grid=SMALL_GRID)
    fit([monitor], data=200, max_epochs=2, logger=TensorBoardLogger(root, name="run", version=0))
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(root), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--load_fast=false", "--reload_interval=1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        client = TensorBoard(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:  # until the server answers and has read the run's final values (the last scalars written)
            assert process.poll() is None, f"TensorBoard exited: {process.stderr.read().decode()[-2000:]}"
            try:
                if "stability_final/accuracy" in client.get("plugin/scalars/tags").get(RUN, {}):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "TensorBoard did not serve the run within 30 s"
            time.sleep(0.3)
        yield client
    finally:
        process.kill()
        process.wait(timeout=10)
        process.stderr.close()


def test_the_dashboards_are_enabled(tensorboard: TensorBoard) -> None:
    listing = tensorboard.get("plugins_listing")
    for plugin in ("scalars", "timeseries", "custom_scalars", "histograms", "images", "text", "hparams"):
        assert listing[plugin]["enabled"], plugin


def test_custom_scalars_chart_holds_accuracy_and_its_floors(tensorboard: TensorBoard) -> None:
    layout = tensorboard.get("plugin/custom_scalars/layout")
    charts = {
        chart["title"]: chart["multiline"]["tag"] for category in layout["category"] for chart in category["chart"]
    }
    scalars = tensorboard.get("plugin/scalars/tags")[RUN]
    assert set(HEADLINE) <= set(scalars)
    # TensorBoard matches a chart's patterns with re.search: each chart shows exactly the tags its title names
    shown = {
        title: {tag for tag in scalars if any(re.search(p, tag) for p in patterns)}
        for title, patterns in charts.items()
    }
    assert shown["accuracy and its certified floors"] == set(HEADLINE)
    assert shown["instability events (count)"] == {"stability/instability_count"}
    assert shown["loss and its margin sandwich"] == {
        "stability/loss",
        "stability_diagnostics/loss_lower",
        "stability_diagnostics/loss_upper",
    }
    assert shown["margin quantiles and the smallest margin"] == {
        tag for tag in scalars if tag.startswith("stability_margins/")
    }


def test_at_most_ten_scalar_cards_under_stability(tensorboard: TensorBoard) -> None:
    scalars = tensorboard.get("plugin/scalars/tags")[RUN]
    headline = sorted(tag for tag in scalars if tag.startswith("stability/"))
    assert headline == sorted([*HEADLINE, "stability/loss", "stability/instability_count"]), (
        headline
    )  # the question's answer, and nothing else


def test_margin_histogram_envelope_images_and_summary_text(tensorboard: TensorBoard) -> None:
    assert "stability/margins" in tensorboard.get("plugin/histograms/tags")[RUN]

    assert "stability/envelopes" in tensorboard.get("plugin/images/tags")[RUN]
    images = tensorboard.get("plugin/images/images", run=RUN, tag="stability/envelopes")
    assert len(images) == 3  # before training and two epochs
    png = tensorboard.raw(f"plugin/images/individualImage?{images[-1]['query']}")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, _ = struct.unpack(">II", png[16:24])
    assert width <= 360  # TensorBoard's image cards are 350 px wide: shown (almost) unscaled

    (summary,) = [tag for tag in tensorboard.get("plugin/text/tags")[RUN] if tag.startswith("stability/summary")]
    texts = tensorboard.get("plugin/text/text", run=RUN, tag=summary)
    assert len(texts) == 3 and "epoch 1: training accuracy" in texts[-1]["text"]


def test_final_values_are_scalars(tensorboard: TensorBoard) -> None:
    scalars = tensorboard.get("plugin/scalars/tags")[RUN]
    assert set(FINAL) <= set(scalars)


def hparams_experiment(tensorboard: TensorBoard) -> dict[str, Any]:
    return tensorboard.post("plugin/hparams/experiment", {"experimentName": ""})


def test_hparams_lists_the_run_and_its_constants(tensorboard: TensorBoard) -> None:
    experiment = hparams_experiment(tensorboard)
    # the settings known at fit start; num_samples, num_classes, dilation follow in the stability/constants text
    assert {"stability/tol", "stability/every_n_epochs", "stability/weights"} <= {
        info["name"] for info in experiment["hparamInfos"]
    }
    groups = tensorboard.post(
        "plugin/hparams/session_groups",
        {"startIndex": 0, "sliceSize": 10, "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"]},
    )
    assert [group["name"] for group in groups["sessionGroups"]] == [RUN]
    (session,) = groups["sessionGroups"][0]["sessions"]
    assert session["status"] == "STATUS_SUCCESS"  # a run that finished; a stopped one ends STATUS_FAILURE


def test_hparams_lists_the_final_floors_as_metrics(tensorboard: TensorBoard) -> None:
    metrics = {info["name"]["tag"] for info in hparams_experiment(tensorboard)["metricInfos"]}
    assert set(FINAL) <= metrics
