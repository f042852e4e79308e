"""The numbers the README and docs/ quote from the example runs are the numbers those runs produced.

``docs/figures.json`` is written by ``python docs/make_figures.py`` from real runs of ``configs/mnist_abs_mlp.yaml``
and ``configs/instability_demo.yaml`` (the same run that regenerates the pictures). Each test finds one quoted
sentence in the docs by a pattern and compares the numbers in it with the JSON's: a docs edit or a regeneration
that changes a number without the other fails. Nothing is trained here.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@cache
def figures() -> dict[str, Any]:
    return json.loads((ROOT / "docs" / "figures.json").read_text(encoding="utf-8"))


@cache
def text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def found(name: str, pattern: str, flat: bool = True) -> list[re.Match[str]]:
    """The matches of ``pattern`` in document ``name``, its lines joined by single spaces unless ``flat`` is false."""
    document = " ".join(text(name).split()) if flat else text(name)
    matches = list(re.finditer(pattern, document, re.DOTALL))
    assert matches, f"{name}: no sentence matches {pattern!r}"
    return matches


def mnist() -> dict[str, Any]:
    return figures()["mnist_abs_mlp"]


def demo() -> dict[str, Any]:
    return figures()["instability_demo"]


def row(run: dict[str, Any], epoch: int) -> dict[str, Any]:
    return next(item for item in run["rows"] if item["epoch"] == epoch)


def test_readme_console_lines_are_the_runs_console_lines() -> None:
    block = found("README.md", r"## What the first command prints\n\n```\n(.*?)```", flat=False)[0].group(1)
    quoted = [
        line for line in block.splitlines() if line.startswith(("[StabilityMonitor]", "[lightning-stability] last"))
    ]
    assert len(quoted) >= 3
    for line in quoted:
        assert line in mnist()["console"], line


def test_readme_event_sentence() -> None:
    event = mnist()["events"][0]
    match = found(
        "README.md",
        r"at epoch (\d+) the loss fell \((\d+\.\d+) → (\d+\.\d+)\) while the accuracy fell \((\d+\.\d+) → (\d+\.\d+)\), (\w+) "
        r"instability event",
    )[0]
    assert int(match.group(1)) == event["epoch"]
    assert match.group(2, 3) == (f"{event['loss_before']:.5f}", f"{event['loss_after']:.5f}")
    assert match.group(4, 5) == (f"{event['accuracy_before']:.5f}", f"{event['accuracy_after']:.5f}")
    assert {"one": 1, "two": 2}[match.group(6)] == len(mnist()["events"])


def _floors(values: tuple[str, ...], check: dict[str, Any]) -> None:
    expected = (check["accuracy"], check["loss_floor"], check["theorem_a_floor"], check["theorem_b_floor"])
    assert values == tuple(f"{value:.4f}" for value in expected)


def test_dashboard_run_description() -> None:
    run = mnist()
    match = found("docs/dashboard.md", r"\((\d+) epochs of Adam on ([\d,]+) MNIST digits, one check before training")[0]
    assert int(match.group(1)) == run["epochs"]
    assert int(match.group(2).replace(",", "")) == run["samples"]
    checks = found("docs/dashboard.md", r"of the example's (\d+) checks \(the one before training among them\)")[0]
    assert int(checks.group(1)) == run["checks"]


def test_dashboard_time_series_cards_and_last_values() -> None:
    run = mnist()
    cards = found("docs/dashboard.md", r"`stability` group \((\d+) cards\)")[0]
    assert int(cards.group(1)) == run["stability_cards"]
    last = found(
        "docs/dashboard.md",
        r"each value at the last check \(epoch (\d+): (\d+\.\d+), (\d+\.\d+), (\d+\.\d+), (\d+\.\d+)\)",
    )[0]
    assert int(last.group(1)) == run["last"]["epoch"]
    _floors(last.group(2, 3, 4, 5), run["last"])
    event = found("docs/dashboard.md", r"the one instability event, at epoch (\d+), a red")[0]
    assert int(event.group(1)) == run["events"][0]["epoch"]


def test_dashboard_headline_filter() -> None:
    run = mnist()
    assert found("docs/dashboard.md", re.escape(run["headline_filter"]))
    cards = found("docs/dashboard.md", r"matches (\d+) cards")[0]
    assert int(cards.group(1)) == run["headline_filter_cards"]
    match = found(
        "docs/dashboard.md",
        r"reaches (\d+\.\d+) at the last check \(step (\d+), epoch (\d+)\), and the certified floors climb towards it: "
        r"the loss floor \(Theorem 0\) to (\d+\.\d+), the Theorem A floor to (\d+\.\d+) and the Theorem B floor to (\d+\.\d+)",
    )[0]
    last = run["last"]
    assert (int(match.group(2)), int(match.group(3))) == (last["tensorboard_step"], last["epoch"])
    _floors(match.group(1, 4, 5, 6), last)


def test_dashboard_gap_and_first_check() -> None:
    run = mnist()
    last = run["last"]
    gap = found(
        "docs/dashboard.md", r"Here it is (\d+\.\d+) − (\d+\.\d+) = (\d+\.\d+), about (\w+) samples out of ([\d,]+)"
    )[0]
    assert gap.group(1, 2) == (f"{last['accuracy']:.4f}", f"{last['loss_floor']:.4f}")
    assert gap.group(3) == f"{last['accuracy'] - last['loss_floor']:.4f}"
    words = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
    assert words[gap.group(4)] == round((last["accuracy"] - last["loss_floor"]) * run["samples"])
    assert int(gap.group(5).replace(",", "")) == run["samples"]
    start = row(run, -1)
    for pattern in (
        r"cuts off the check before training \(accuracy (\d+\.\d+) here",
        r"before training almost all the "
        r"mass lies left of 0 \(accuracy (\d+\.\d+)\)",
    ):
        assert found("docs/dashboard.md", pattern)[0].group(1) == f"{start['accuracy']:.2f}"


def test_dashboard_instability_count_sentence() -> None:
    event = mnist()["events"][0]
    match = found(
        "docs/dashboard.md",
        r"the count becomes 1 at epoch (\d+) \(step (\d+)\): the accuracy fell from (\d+\.\d+) to (\d+\.\d+)",
    )[0]
    assert (int(match.group(1)), int(match.group(2))) == (event["epoch"], event["tensorboard_step"])
    assert match.group(3, 4) == (f"{event['accuracy_before']:.5f}", f"{event['accuracy_after']:.5f}")


def test_dashboard_quotes_the_last_summary() -> None:
    run = mnist()
    match = found("docs/dashboard.md", r"At epoch (\d+): \"(.*?)\"\*")[0]
    assert int(match.group(1)) == run["last"]["epoch"]
    quoted = " ".join(match.group(2).split())
    assert quoted in run["summaries"][-1]


def test_dashboard_envelope_floors() -> None:
    last = mnist()["last"]
    match = found("docs/dashboard.md", r"with the floor each gives \((\d+\.\d+) and (\d+\.\d+)\)")[0]
    assert match.group(1, 2) == (f"{last['theorem_a_floor']:.3f}", f"{last['theorem_b_floor']:.3f}")


def _demo_headline(run: dict[str, Any]) -> str:
    event = run["events"][0]
    return (
        f"instability at epoch {event['epoch']}: loss {event['loss_before']:.3g} → {event['loss_after']:.3g} while "
        f"accuracy {event['accuracy_before']:.5f} → {event['accuracy_after']:.5f} ({event['flipped']} samples)"
    )


def test_stability_tab_caption() -> None:
    run = demo()
    assert f'"{_demo_headline(run)}"' in " ".join(text("docs/dashboard.md").split())
    stop = found("docs/dashboard.md", r"\"training stopped at epoch (\d+): instability \(patience 1\)\"")[0]
    assert int(stop.group(1)) == run["last"]["epoch"]
    checks = found(
        "docs/dashboard.md",
        r"no instability since epoch 0: accuracy (\d+\.\d+), nothing certified yet \(every "
        r"floor is 0\)\"\), (\w+) checks",
    )[0]
    short = figures()["instability_demo_short"]
    assert checks.group(1) == f"{short['last']['accuracy']:.4f}"
    assert {"two": 2, "three": 3, "four": 4}[checks.group(2)] == short["checks"]
    assert all(value == 0 for value in (short["last"]["loss_floor"], short["last"]["theorem_a_floor"]))


def test_samples_page_quotes_the_demo() -> None:
    run = demo()
    event = run["events"][0]
    flips = found(
        "docs/samples.md", r"\"(\d+) samples flipped to wrong since the previous check \(class (\d+): (\d+)\)\""
    )[0]
    assert int(flips.group(1)) == int(flips.group(3)) == event["flipped"]
    assert [int(flips.group(2))] == event["flipped_classes"]
    assert flips.group(0).strip('"') in run["summaries"][-1]
    then = found("docs/samples.md", r"Then the (\d+) samples of class (\d+) that flipped to wrong at epoch (\d+)")[0]
    assert (int(then.group(1)), [int(then.group(2))], int(then.group(3))) == (
        event["flipped"],
        event["flipped_classes"],
        event["epoch"],
    )
    title = found("docs/samples.md", r"\"instability at epoch (\d+): causes \(smallest margins, B witness\)")[0]
    assert int(title.group(1)) == event["epoch"]


def test_samples_page_mnist_grid_caption() -> None:
    event = mnist()["events"][0]
    match = found(
        "docs/samples.md", r"logged at the example's instability event \(epoch (\d+)\): (\w+) samples flipped"
    )[0]
    assert int(match.group(1)) == event["epoch"]
    assert {"one": 1, "two": 2, "three": 3}[match.group(2)] == event["flipped"]


def test_the_json_is_consistent_with_itself() -> None:
    """The JSON's summaries and rows agree (a hand edit of one number in it fails here or above)."""
    for run in (mnist(), demo()):
        last = run["last"]
        assert last == run["rows"][-1] and len(run["rows"]) == run["checks"]
        assert run["summaries"][-1].startswith(f"epoch {last['epoch']}: training accuracy {last['accuracy']:.4f}")
        assert [event["epoch"] for event in run["events"]] == [
            item["epoch"] for item in run["rows"] if item["instability"]
        ]
