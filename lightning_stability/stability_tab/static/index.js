// The Stability tab (TensorBoard calls render() in its iframe) and the HTML page (its inline copy of these
// modules calls render() with the runs' views in its inert JSON element, id "stability-data").
// Everything a run wrote is shown as text (textContent), never as markup.

import { epochLabel, legend, lineChart } from "./chart.js";
import { STYLE } from "./style.js";
import { blameSection, checksTable, element } from "./tables.js";

const FLOORS = [
  { key: "loss_floor", label: "loss floor (Theorem 0)", color: "#1f77b4" },
  { key: "theorem_a_floor", label: "Theorem A floor", color: "#ff7f0e" },
  { key: "theorem_b_floor", label: "Theorem B floor", color: "#2ca02c" },
];

const state = { views: new Map(), runs: [], selected: null, log: false, offline: false };

async function fetchJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function viewOf(name) {
  if (!state.views.has(name)) state.views.set(name, await fetchJson(`run?name=${encodeURIComponent(name)}`));
  return state.views.get(name);
}

function x(check) {
  return check.epoch === null ? check.step : check.epoch;
}

function accuracyChart(view) {
  const checks = view.checks;
  const marks = checks.filter((c) => c.event).map((c) => ({ x: x(c), label: `instability ${epochLabel(x(c))}`,
    color: "#c62828" }));
  const stopped = view.verdict.stop && checks.length ? [{ x: x(checks[checks.length - 1]), label: "stop",
    color: "#4a148c" }] : [];
  const value = (v) => (state.log ? (v === null ? null : 1 - v) : v);
  const series = [{ label: state.log ? "1 − accuracy" : "training accuracy", color: "#000", width: 2.2,
    points: checks.map((c) => [x(c), value(c.accuracy), c.event]) }];
  for (const floor of FLOORS) {
    series.push({ label: state.log ? `1 − ${floor.label}` : floor.label, color: floor.color,
      points: checks.map((c) => [x(c), value(c[floor.key])]) });
  }
  const chart = lineChart({ width: 540, height: 290, series, marks: marks.concat(stopped), log: state.log,
    yLabel: state.log ? "1 − accuracy / 1 − floor (log)" : "accuracy / certified floor",
    yRange: state.log ? null : [0, 1] });
  const box = element("div");
  box.appendChild(chart);
  box.appendChild(legend(series, marks.length ? [{ label: "instability event (loss fell, accuracy fell)",
    color: "#c62828" }] : []));
  return box;
}

function panelChart(panel) {
  const colors = ["#6a1b9a", "#00838f", "#ef6c00", "#2e7d32", "#ad1457", "#37474f"];
  const series = panel.series.map((s, i) => ({ label: s.label, color: colors[i % colors.length], points: s.points }));
  const box = element("div", "st-panel");
  box.appendChild(element("h2", "", panel.title));
  box.appendChild(lineChart({ width: 300, height: 170, series, log: panel.log, yLabel: panel.ylabel,
    reference: panel.reference === null ? null : { y: panel.reference, label: String(panel.reference) } }));
  box.appendChild(legend(series));
  return box;
}

function verdictBox(view) {
  const verdict = view.verdict;
  const box = element("div", `st-verdict st-${verdict.state}`);
  box.appendChild(element("div", "st-headline", verdict.headline));
  if (verdict.stop) box.appendChild(element("div", "st-stop", verdict.stop));
  const earlier = verdict.events.filter((line) => line !== verdict.headline);
  if (earlier.length) {
    const list = element("ul", "st-events");
    for (const line of earlier) list.appendChild(element("li", "", line));
    box.appendChild(list);
  }
  if (view.stop_detail) box.appendChild(element("div", "st-small", view.stop_detail));
  return box;
}

function runCards() {
  const cards = element("div", "st-cards");
  if (state.runs.length < 2) return cards;
  for (const run of state.runs) {
    const card = element("div", `st-card st-${run.verdict.state}` + (run.name === state.selected ? " st-selected" : ""));
    card.appendChild(element("b", "", run.name));
    card.appendChild(element("div", "", run.verdict.headline));
    if (run.verdict.stop) card.appendChild(element("div", "st-stop", run.verdict.stop));
    card.addEventListener("click", () => select(run.name));
    cards.appendChild(card);
  }
  return cards;
}

function topBar(view) {
  const bar = element("div", "st-bar");
  bar.appendChild(element("h1", "", "Stability"));
  const chooser = element("select");
  chooser.setAttribute("aria-label", "run");
  for (const run of state.runs) {
    const option = element("option", "", run.name);
    option.value = run.name;
    option.selected = run.name === state.selected;
    chooser.appendChild(option);
  }
  chooser.addEventListener("change", () => select(chooser.value));
  bar.appendChild(chooser);
  const samples = view.num_samples ? `, ${view.num_samples} samples` : "";
  bar.appendChild(element("span", "st-source", `${view.checks.length} checks from the ${view.source}${samples}`));
  return bar;
}

function draw(root, view) {
  root.replaceChildren();
  root.appendChild(topBar(view));
  root.appendChild(runCards());
  root.appendChild(verdictBox(view));
  const main = root.appendChild(element("div", "st-main"));
  const left = main.appendChild(element("div", "st-panel"));
  const head = left.appendChild(element("div", "st-bar"));
  head.appendChild(element("h2", "", "accuracy and its certified floors, one point per check"));
  const toggle = head.appendChild(element("span", "st-toggle"));
  for (const [log, label] of [[false, "accuracy"], [true, "1 − accuracy (log)"]]) {
    const button = toggle.appendChild(element("button", log === state.log ? "st-on" : "", label));
    button.addEventListener("click", () => { state.log = log; draw(root, view); });
  }
  left.appendChild(accuracyChart(view));
  const right = main.appendChild(element("div"));
  const checks = right.appendChild(element("div", "st-panel"));
  checks.appendChild(element("h2", "", "checks"));
  const scroll = checks.appendChild(element("div", "st-scroll"));
  scroll.style.maxHeight = "190px";
  scroll.appendChild(checksTable(view));
  const blame = right.appendChild(element("div", "st-panel"));
  blame.style.marginTop = "6px";
  const blameScroll = blame.appendChild(element("div", "st-scroll"));
  blameScroll.style.maxHeight = "150px";
  blameScroll.appendChild(blameSection(view));
  if (view.panels.length) {
    const panels = root.appendChild(element("div", "st-panels"));
    for (const panel of view.panels) panels.appendChild(panelChart(panel));
  }
  // the summary is Markdown for TensorBoard's Text tab; shown here as plain text, without its emphasis marks
  if (view.summary) root.appendChild(element("div", "st-small", `last summary: ${view.summary.replaceAll("**", "")}`));
}

async function select(name) {
  state.selected = name;
  const root = document.getElementById("stability-root");
  try {
    draw(root, await viewOf(name));
  } catch (error) {
    root.replaceChildren(element("div", "st-stop", `cannot show the run ${name}: ${error.message}`));
  }
}

export async function render() {
  const style = document.createElement("style");
  style.textContent = STYLE;
  document.head.appendChild(style);
  const root = element("div", "st-root");
  root.id = "stability-root";
  document.body.appendChild(root);
  const inline = document.getElementById("stability-data");
  try {
    if (inline) {
      const data = JSON.parse(inline.textContent);
      state.offline = true;
      for (const view of data.runs) state.views.set(view.name, view);
      state.runs = data.runs.map((view) => ({ name: view.name, verdict: view.verdict }));
    } else {
      state.runs = (await fetchJson("runs")).runs;
    }
  } catch (error) {
    root.appendChild(element("div", "st-stop", `cannot read the runs: ${error.message}`));
    return;
  }
  if (!state.runs.length) {
    root.appendChild(element("div", "st-headline", "No run holds a check of the StabilityMonitor yet."));
    return;
  }
  // "#run=NAME" opens that run (a link to one run); else the first
  const wanted = location.hash.startsWith("#run=") ? decodeURIComponent(location.hash.slice(5)) : null;
  const known = state.runs.find((run) => run.name === wanted);
  await select(known ? known.name : state.runs[0].name);
}
