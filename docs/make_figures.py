"""Regenerate the pictures the docs and the README show, and the numbers they quote, from real runs.

    python docs/make_figures.py [--keep DIR]

Trains the two example configurations with the command (`lightning-stability fit`), into a temporary folder:

* ``configs/mnist_abs_mlp.yaml`` (the default run: 12 epochs of Adam on the embedded MNIST digits);
* ``configs/instability_demo.yaml`` (the instability demo: an event and a stop), and the same demo for 2 epochs
  with a ``SharpnessMonitor`` added (a short stable run with the other monitor's panel), the second run of the
  Stability tab's pictures.

Then it writes, from those runs only:

* ``examples/report_mnist.png``: the default run's ``report.png`` (README);
* ``docs/images/blame_mnist_example.png``: the ``stability/blame`` grid the monitor logged at the default run's
  instability event (samples.md);
* ``docs/images/blame_instability_demo.png``: ``lightning-stability report``'s blame table of the demo (samples.md);
* ``docs/images/tensorboard_timeseries_first_screen.png``, ``tensorboard_timeseries_headline.png``,
  ``tensorboard_summary_text.png``, ``tensorboard_envelopes.png``: TensorBoard (Time Series at its defaults, Time
  Series filtered to the headline, Text, Images) on the default run, screenshots of headless Chromium
  (dashboard.md);
* ``docs/images/stability_tab.png`` (index.md, dashboard.md): the Stability tab in TensorBoard on the demo's two
  runs; ``docs/images/stability_page.png``: ``stability.html`` of the same runs, the short run selected;
* ``docs/figures.json``: the numbers the docs quote from these runs (checked against the docs' text by
  ``tests/test_docs_numbers.py``).

Not made here: ``docs/images/data_map_label_noise.png`` (``python benchmarks/label_noise.py --data-map FILE``)
and ``docs/images/edge_of_stability.png`` (``python examples/edge_of_stability.py``), which come from their own
experiments. Needs Debian's ``chromium`` on PATH. Takes a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_stability.files import load_margin_files

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
NUMBERS = ROOT / "docs" / "figures.json"
HEADLINE_FILTER = "stability/(accuracy|loss_floor|theorem_a/floor|theorem_b/floor)"
WINDOW = (1280, 800)
CONSOLE = r"\[StabilityMonitor\] (epoch|before)|\[lightning-stability\] last check"  # lines without paths


def fit(work: Path, console: str, config: str, *extra: str) -> None:
    """`lightning-stability fit --config CONFIG` with its logs under ``work/logs``; its console output goes to
    ``work/console``."""
    command = [sys.executable, "-m", "lightning_stability.cli", "fit", "--config", str(ROOT / config)]
    command += [f"--trainer.logger.init_args.save_dir={work / 'logs'}", *extra]
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    (work / console).write_text(done.stdout + done.stderr, encoding="utf-8")


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "lightning_stability.cli", *args], check=True, capture_output=True)


def accumulator(run: Path) -> EventAccumulator:
    guidance = {"scalars": 0, "images": 0, "tensors": 0, "histograms": 1}
    return EventAccumulator(str(run), size_guidance=guidance).Reload()


def check_rows(run: Path) -> list[dict[str, Any]]:
    """One row per check of ``run``, from its margin files and TensorBoard's step of the check."""
    events = accumulator(run)
    steps = [int(event.step) for event in events.Scalars("stability/accuracy")]
    rows = []
    margin_files = load_margin_files(run)
    assert len(steps) == len(margin_files), (run, steps, len(margin_files))
    for step, check in zip(steps, margin_files, strict=True):
        report = check["report"]
        blame = check.get("blame", {})
        rows.append(
            {
                "epoch": int(check["epoch"]),
                "global_step": int(check["global_step"]),
                "tensorboard_step": step,
                "accuracy": float(report["accuracy"]),
                "loss": float(report["loss"]),
                "loss_floor": float(report["loss_floor"]),
                "theorem_a_floor": float(report["theorem_a/floor"]),
                "theorem_b_floor": float(report["theorem_b/floor"]),
                "instability": bool(check.get("instability", 0.0)),
                "forgotten": len(blame.get("forgotten", [])),
                "forgotten_classes": sorted({int(check["targets"][i]) for i in _positions(check, "forgotten")}),
                "num_samples": int(report["num_samples"]),
            }
        )
    return rows


def _positions(check: dict[str, Any], name: str) -> list[int]:
    """Positions in the check's vectors of the samples of blame set ``name``."""
    where = {int(index): position for position, index in enumerate(check["indices"].tolist())}
    return [where[int(index)] for index in check.get("blame", {}).get(name, [])]


def texts(run: Path, tag: str) -> list[str]:
    """The text summaries ``tag`` of ``run``, in step order."""
    events = accumulator(run)
    found = []
    for event in events.Tensors(tag):
        values = event.tensor_proto.string_val
        found.append(values[0].decode("utf-8") if values else "")
    return found


def time_series_cards(run: Path, pattern: str | None = None) -> int:
    """How many Time Series cards: the scalar, image and histogram tags of the group ``stability`` (the prefix
    before the first ``/``), or the tags that the filter ``pattern`` matches anywhere (as TensorBoard's filter)."""
    tags = accumulator(run).Tags()
    every = [tag for kind in ("scalars", "images", "histograms") for tag in tags.get(kind, [])]
    if pattern is None:
        return sum(tag.split("/", 1)[0] == "stability" for tag in every)
    return sum(re.search(pattern, tag) is not None for tag in every)


def save_logged_image(run: Path, tag: str, step: int, output: Path) -> None:
    """Save the image ``tag`` that ``run`` logged at TensorBoard step ``step``."""
    for event in accumulator(run).Images(tag):
        if int(event.step) == step:
            Image.open(io.BytesIO(event.encoded_image_string)).save(output)
            return
    raise LookupError(f"{run} logged no {tag} at step {step}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def tensorboard(logdir: Path) -> Iterator[str]:
    """A TensorBoard on 127.0.0.1 serving ``logdir`` (every image kept); its address."""
    port = _free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--load_fast", "false", "--samples_per_plugin", "images=100"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/data/plugins_listing", timeout=5) as response:
                    if b'"stability"' in response.read():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("TensorBoard did not start")
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def screenshot(url: str, output: Path, profile: Path, size: tuple[int, int] = WINDOW) -> None:
    """Headless Chromium's picture of ``url`` in a ``size`` window (no host but 127.0.0.1 resolves)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("no `chromium` on PATH (apt-get install -y chromium)")
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=90000",
        f"--window-size={size[0]},{size[1]}",
        f"--screenshot={output}",
        url,
    ]
    subprocess.run(command, capture_output=True, timeout=180, check=True)
    if not output.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {url}")


def numbers_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's numbers the docs quote: every check, the events, the last check."""
    events = []
    for before, after in itertools.pairwise(rows):
        if after["instability"]:
            events.append(
                {
                    "epoch": after["epoch"],
                    "tensorboard_step": after["tensorboard_step"],
                    "loss_before": before["loss"],
                    "loss_after": after["loss"],
                    "accuracy_before": before["accuracy"],
                    "accuracy_after": after["accuracy"],
                    "flipped": after["forgotten"],
                    "flipped_classes": after["forgotten_classes"],
                }
            )
    return {
        "samples": rows[0]["num_samples"],
        "checks": len(rows),
        "epochs": max(row["epoch"] for row in rows) + 1,
        "rows": rows,
        "events": events,
        "last": rows[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="train into this folder and keep it (default: a temporary one)")
    parser.add_argument("--reuse", type=Path, help="draw from the runs an earlier --keep trained into this folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="make_figures_") as temporary:
        work = (args.reuse or args.keep or Path(temporary)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        if args.reuse is None:
            train(work)
        make(work)
    return 0


def train(work: Path) -> None:
    """The three runs, under ``work/logs``; their console output in ``work/*.log``."""
    print("training configs/mnist_abs_mlp.yaml ...", flush=True)
    fit(work, "mnist_abs_mlp.log", "configs/mnist_abs_mlp.yaml")
    print("training configs/instability_demo.yaml (and a 2-epoch run with the SharpnessMonitor) ...", flush=True)
    fit(work, "instability_demo.log", "configs/instability_demo.yaml")
    fit(
        work,
        "instability_demo_short.log",
        "configs/instability_demo.yaml",
        "--trainer.max_epochs=2",
        "--trainer.callbacks+=lightning_stability.SharpnessMonitor",
        "--trainer.callbacks.init_args.num_samples=64",
    )


def make(work: Path) -> None:
    """The pictures and the numbers from the runs under ``work/logs``."""
    logs = work / "logs"
    mnist_console = (work / "mnist_abs_mlp.log").read_text(encoding="utf-8")
    demo_console = (work / "instability_demo.log").read_text(encoding="utf-8")
    mnist, demo, short = (
        logs / "mnist_abs_mlp" / "version_0",
        logs / "instability_demo" / "version_0",
        logs / "instability_demo" / "version_1",
    )

    mnist_numbers = numbers_of(check_rows(mnist))
    demo_numbers = numbers_of(check_rows(demo))
    short_numbers = numbers_of(check_rows(short))
    mnist_numbers["console"] = [line for line in mnist_console.splitlines() if re.match(CONSOLE, line)]
    demo_numbers["console"] = [line for line in demo_console.splitlines() if re.match(CONSOLE, line)]
    mnist_numbers["summaries"] = texts(mnist, "stability/summary/text_summary")
    demo_numbers["summaries"] = texts(demo, "stability/summary/text_summary")
    mnist_numbers["stability_cards"] = time_series_cards(mnist)
    mnist_numbers["headline_filter"] = HEADLINE_FILTER
    mnist_numbers["headline_filter_cards"] = time_series_cards(mnist, HEADLINE_FILTER)

    print("pictures ...", flush=True)
    shutil.copyfile(mnist / "report.png", ROOT / "examples" / "report_mnist.png")
    event_step = mnist_numbers["events"][0]["tensorboard_step"]
    save_logged_image(mnist, "stability/blame", event_step, IMAGES / "blame_mnist_example.png")
    shutil.copyfile(demo / "report_blame.png", IMAGES / "blame_instability_demo.png")
    page = work / "stability.html"
    cli("report", str(logs / "instability_demo"), "-o", str(page))

    profile = work / "chromium-profile"
    with tensorboard(logs / "mnist_abs_mlp") as base:
        first = IMAGES / "tensorboard_timeseries_first_screen.png"
        screenshot(f"{base}/#timeseries", first, profile, (1280, 1200))
        with Image.open(first) as whole:  # the stability group, below Lightning's epoch group
            whole.crop((259, 700, 1029, 1200)).save(first)
        headline = urllib.request.quote(HEADLINE_FILTER, safe="")
        card = IMAGES / "tensorboard_timeseries_headline.png"
        screenshot(f"{base}/?smoothing=0&tagFilter={headline}#timeseries", card, profile, (1280, 1000))
        with Image.open(card) as whole:  # the accuracy_and_floors card, top right at 1280 × 1000
            whole.crop((640, 150, 1015, 495)).save(card)
        screenshot(f"{base}/#text", IMAGES / "tensorboard_summary_text.png", profile)
        screenshot(f"{base}/#images", IMAGES / "tensorboard_envelopes.png", profile)
    with tensorboard(logs / "instability_demo") as base:
        screenshot(f"{base}/#stability", IMAGES / "stability_tab.png", profile)
    screenshot(page.as_uri() + "#run=version_1", IMAGES / "stability_page.png", profile)

    numbers = {
        "generated_by": "python docs/make_figures.py",
        "mnist_abs_mlp": mnist_numbers,
        "instability_demo": demo_numbers,
        "instability_demo_short": short_numbers,
    }
    NUMBERS.write_text(json.dumps(numbers, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {NUMBERS.relative_to(ROOT)} and the pictures", flush=True)


if __name__ == "__main__":
    sys.exit(main())
