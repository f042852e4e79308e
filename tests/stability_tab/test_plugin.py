"""The Stability tab's routes on real runs' logs, through TensorBoard's own WSGI app (werkzeug test client)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from lightning_stability.files import load_margin_files
from lightning_stability.stability_tab.plugin import StabilityPlugin

from .conftest import MARKUP_RUN

BASE = "/data/plugin/stability"


@pytest.fixture(scope="module")
def client(stability_logs: Path) -> Client:
    events = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"text": 0})
    events.AddRunsFromDirectory(str(stability_logs))
    events.Reload()
    provider = data_provider.MultiplexerDataProvider(events, str(stability_logs))
    plugin = StabilityPlugin(base_plugin.TBContext(logdir=str(stability_logs), data_provider=provider))
    return Client(application.TensorBoardWSGI([plugin], data_provider=provider))


def test_listed_active_with_its_module(client: Client) -> None:
    listing = client.get("/data/plugins_listing").get_json()["stability"]
    assert listing["enabled"] is True and listing["tab_name"] == "Stability"
    assert listing["loading_mechanism"] == {"type": "IFRAME", "module_path": "/data/plugin/stability/index.js"}
    module = client.get(f"{BASE}/index.js")
    assert module.status_code == 200 and module.mimetype == "text/javascript"
    assert "export async function render()" in module.get_data(as_text=True)
    for name in ("chart.js", "tables.js", "style.js"):
        assert client.get(f"{BASE}/{name}").status_code == 200


def test_runs_with_their_verdicts(client: Client) -> None:
    runs = {run["name"]: run["verdict"] for run in client.get(f"{BASE}/runs").get_json()["runs"]}
    assert set(runs) == {"demo/version_0", "demo/version_1", f"demo/{MARKUP_RUN}"}
    assert runs["demo/version_0"]["state"] == "unstable"
    assert runs["demo/version_0"]["stop"] == "training stopped at epoch 10: instability (patience 1)"
    assert runs["demo/version_1"]["stop"] is None and runs["demo/version_1"]["events"] == []


def test_run_view_matches_the_margin_files(client: Client, stability_logs: Path) -> None:
    response = client.get(f"{BASE}/run", query_string={"name": "demo/version_0"})
    assert response.status_code == 200
    view = response.get_json()
    files = load_margin_files(stability_logs / "demo" / "version_0" / "margins")
    assert [check["epoch"] for check in view["checks"]] == [file["epoch"] for file in files] == list(range(-1, 11))
    for check, file in zip(view["checks"], files, strict=True):
        for key, name in (("accuracy", "accuracy"), ("loss", "loss"), ("loss_floor", "loss_floor")):
            assert check[key] == pytest.approx(file["report"][name], rel=1e-6)  # float32 in the events
        assert check["event"] == (file["instability"] >= 0.5)
        assert check["step"] >= 0 and check["cost"] > 0
    assert [check["epoch"] for check in view["checks"] if check["event"]] == [10]
    assert view["checks"][-1]["forgotten"] * view["num_samples"] == pytest.approx(41)
    assert view["verdict"]["headline"] == (
        "instability at epoch 10: loss 0.684 → 0.679 while accuracy 0.95238 → 0.56190 (41 samples)"
    )
    assert view["stop_detail"].startswith("instability at epoch 10: the training loss fell")
    (event,) = view["blame"]
    assert event["epoch"] == 10
    titles = [blamed["title"] for blamed in event["sets"]]
    assert titles == ["worst margins", "Condition B witness interval", "forgotten since the previous check"]
    cells = files[-1]["blame_cells"]
    assert [row["index"] for row in event["sets"][1]["rows"]] == cells["witness"]["index"].tolist()
    assert event["sets"][2]["total"] == 41
    margins = [row["margin"] for row in event["sets"][0]["rows"]]
    assert margins == sorted(margins)  # causes first, smallest margin first


def test_other_monitors_panel(client: Client) -> None:
    view = client.get(f"{BASE}/run", query_string={"name": "demo/version_1"}).get_json()
    (panel,) = view["panels"]
    assert panel["title"] == "edge of stability (SharpnessMonitor)" and panel["reference"] == 1.0
    (series,) = panel["series"]
    assert series["tag"] == "stability/sharpness/edge_ratio" and len(series["points"]) >= 2
    assert all(isinstance(epoch, float) and value > 0 for epoch, value in series["points"])


def test_markup_run_name_is_data(client: Client) -> None:
    response = client.get(f"{BASE}/run", query_string={"name": f"demo/{MARKUP_RUN}"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert json.loads(response.get_data(as_text=True))["name"] == f"demo/{MARKUP_RUN}"


@pytest.mark.parametrize(
    "name",
    [
        "../demo/version_0",
        "demo/../demo/version_0",
        "demo/version_0/..",
        "demo/version_0/margins",
        "/etc/passwd",
        "../../../../etc/passwd",
        "",
        "no_such_run",
        "demo/version_0/events.out.tfevents",
    ],
)
def test_names_outside_the_known_runs_are_refused(client: Client, stability_logs: Path, name: str) -> None:
    response = client.get(f"{BASE}/run", query_string={"name": name})
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert json.loads(body) == {"error": "unknown run"} and "root:" not in body


@pytest.mark.parametrize(
    "path", ["/../../etc/passwd", "/static/index.js", "/view.py", "/%2e%2e/%2e%2e/etc/passwd", "/index.js/../plugin.py"]
)
def test_no_file_served_outside_the_routes(client: Client, path: str) -> None:
    response = client.get(BASE + path)
    assert 400 <= response.status_code < 500
    assert "root:" not in response.get_data(as_text=True) and "def " not in response.get_data(as_text=True)


def test_run_route_without_a_name(client: Client) -> None:
    assert client.get(f"{BASE}/run").status_code == 404
