// The table of checks and, at each instability event, the samples to blame: built from the view's data with
// createElement and textContent only.

import { epochLabel } from "./chart.js";

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fixed(value, digits) {
  return value === null || value === undefined ? "–" : value.toFixed(digits);
}

function significant(value, digits) {
  return value === null || value === undefined ? "–" : String(+value.toPrecision(digits));
}

// a flip mass as a number of samples when the run's sample count is known, else as the mass itself
function flips(mass, samples) {
  if (mass === null || mass === undefined) return "–";
  return samples ? String(Math.round(mass * samples)) : significant(mass, 3);
}

function table(headers, rows, rowClass) {
  const node = element("table", "st-table");
  const head = element("tr");
  for (const header of headers) head.appendChild(element("th", "", header));
  node.appendChild(element("thead")).appendChild(head);
  const body = node.appendChild(element("tbody"));
  rows.forEach((cells, i) => {
    const row = element("tr", rowClass ? rowClass(i) : "");
    for (const cell of cells) row.appendChild(element("td", "", cell));
    body.appendChild(row);
  });
  return node;
}

// One row per check, as logged: epoch, step, accuracy, loss, the three floors, the event, the flips, the cost.
export function checksTable(view) {
  const headers = ["epoch", "step", "accuracy", "loss", "loss fl.", "A floor", "B floor", "event", "flips −/+",
    "cost s"];
  const rows = view.checks.map((c) => [
    c.epoch === null ? "?" : epochLabel(c.epoch), c.step, fixed(c.accuracy, 5), significant(c.loss, 4),
    fixed(c.loss_floor, 4), fixed(c.theorem_a_floor, 4), fixed(c.theorem_b_floor, 4), c.event ? "instability" : "",
    flips(c.forgotten, view.num_samples) + " / " + flips(c.learned, view.num_samples),
    c.cost === null ? "–" : c.cost.toFixed(3),
  ]);
  return table(headers, rows, (i) => (view.checks[i].event ? "st-event" : ""));
}

// At each event whose margin file holds them: the causes first (smallest margins, the Condition B witness),
// then the samples that flipped.
export function blameSection(view) {
  const box = element("div");
  if (!view.blame.length) {
    const events = view.checks.filter((c) => c.event).length;
    const why = view.notes.length ? view.notes.join("; ") : "no margin file of an event holds blame sets";
    box.appendChild(element("div", "st-small", events ? why : "no instability event: nothing to blame"));
    return box;
  }
  for (const event of view.blame) {
    box.appendChild(element("h2", "", `samples to blame at ${epochLabel(event.epoch) === "start" ? "the start" :
      "epoch " + event.epoch}`));
    for (const set of event.sets) {
      const shown = set.rows.length < set.total ? ` (${set.rows.length} of ${set.total}, smallest margins)` :
        ` (${set.total})`;
      box.appendChild(element("div", "st-small", set.title + shown));
      const rows = set.rows.map((r) => [r.index, r.label, r.predicted, significant(r.margin, 4)]);
      box.appendChild(table(["sample", "label", "predicted", "margin"], rows));
    }
  }
  return box;
}
