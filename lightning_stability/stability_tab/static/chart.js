// A small SVG line chart, our own: one point per value as given (never smoothed), integer epochs on the x-axis,
// labelled vertical marks (instability events, the stop), optional reference line and log scale. Every label is
// set with textContent.

const SVG = "http://www.w3.org/2000/svg";

export function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes || {})) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

export function epochLabel(epoch) {
  return epoch < 0 ? "start" : String(epoch);
}

function niceLinear(low, high) {
  if (!(high > low)) { low -= 0.5; high += 0.5; }
  const raw = (high - low) / 5;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(low / step - 1e-9) * step; t <= high + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

function formatTick(value, log) {
  if (log) return value.toExponential(0).replace("e+0", "").replace("e", "e");
  return Math.abs(value) >= 1000 || (value !== 0 && Math.abs(value) < 0.01) ? value.toExponential(1) : String(+value.toFixed(4));
}

// series: [{label, color, dash, points: [[x, y], ...]}]; marks: [{x, label, color}]; reference: {y, label}
export function lineChart({ width, height, series, marks = [], reference = null, log = false, yLabel = "",
  yRange = null, integerX = true }) {
  const pad = { left: 58, right: 12, top: 18, bottom: 30 };
  const svg = svgElement("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const usable = (y) => y !== null && Number.isFinite(y) && (!log || y > 0);
  const points = series.flatMap((s) => s.points.filter((p) => usable(p[1])));
  const xs = points.map((p) => p[0]).concat(marks.map((m) => m.x));
  if (!points.length) {
    svg.appendChild(svgElement("text", { x: width / 2, y: height / 2, "text-anchor": "middle" },
      log ? "no value above 0 to draw on a log axis" : "no values"));
    return svg;
  }
  let ys = points.map((p) => p[1]);
  if (reference && usable(reference.y)) ys = ys.concat([reference.y]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = yRange || [Math.min(...ys), Math.max(...ys)];
  let yTicks;
  if (log) {
    const [e0, e1] = [Math.floor(Math.log10(y0)), Math.max(Math.ceil(Math.log10(y1)), Math.floor(Math.log10(y0)) + 1)];
    [y0, y1] = [Math.pow(10, e0), Math.pow(10, e1)];
    yTicks = [];
    const every = Math.max(1, Math.ceil((e1 - e0) / 6));
    for (let e = e0; e <= e1; e += every) yTicks.push(Math.pow(10, e));
  } else {
    yTicks = niceLinear(y0, y1);
    [y0, y1] = [Math.min(y0, yTicks[0]), Math.max(y1, yTicks[yTicks.length - 1])];
  }
  const plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;
  const sx = (x) => pad.left + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * plotW;
  const fy = (y) => (log ? Math.log10(y) : y);
  const sy = (y) => pad.top + (1 - (fy(y) - fy(y0)) / (fy(y1) - fy(y0) || 1)) * plotH;
  const axis = svgElement("g", { class: "st-axis" });
  axis.appendChild(svgElement("rect", { x: pad.left, y: pad.top, width: plotW, height: plotH, fill: "#fff",
    stroke: "#bdbdbd" }));
  for (const tick of yTicks) {
    axis.appendChild(svgElement("line", { x1: pad.left, x2: pad.left + plotW, y1: sy(tick), y2: sy(tick),
      stroke: "#eee" }));
    axis.appendChild(svgElement("text", { x: pad.left - 4, y: sy(tick) + 4, "text-anchor": "end" },
      formatTick(tick, log)));
  }
  const span = x1 - x0;
  const xStep = integerX ? Math.max(1, Math.ceil(span / 14)) : (niceLinear(x0, x1)[1] - niceLinear(x0, x1)[0]);
  for (let x = integerX ? Math.ceil(x0) : niceLinear(x0, x1)[0]; x <= x1 + 1e-9; x += xStep) {
    if (x < x0 - 1e-9) continue;
    axis.appendChild(svgElement("line", { x1: sx(x), x2: sx(x), y1: pad.top + plotH, y2: pad.top + plotH + 4,
      stroke: "#757575" }));
    axis.appendChild(svgElement("text", { x: sx(x), y: pad.top + plotH + 16, "text-anchor": "middle" },
      integerX ? epochLabel(x) : formatTick(x, false)));
  }
  axis.appendChild(svgElement("text", { x: pad.left + plotW / 2, y: height - 2, "text-anchor": "middle" }, "epoch"));
  axis.appendChild(svgElement("text", { x: 12, y: pad.top + plotH / 2, "text-anchor": "middle",
    transform: `rotate(-90 12 ${pad.top + plotH / 2})` }, yLabel));
  svg.appendChild(axis);
  if (reference && usable(reference.y) && reference.y >= y0 && reference.y <= y1) {
    svg.appendChild(svgElement("line", { x1: pad.left, x2: pad.left + plotW, y1: sy(reference.y), y2: sy(reference.y),
      stroke: "#616161", "stroke-dasharray": "6 3" }));
    svg.appendChild(svgElement("text", { x: pad.left + plotW - 4, y: sy(reference.y) - 4, "text-anchor": "end" },
      reference.label));
  }
  marks.forEach((mark, i) => {
    const g = svgElement("g", { class: "st-mark" });
    g.appendChild(svgElement("line", { x1: sx(mark.x), x2: sx(mark.x), y1: pad.top, y2: pad.top + plotH,
      stroke: mark.color, "stroke-dasharray": "3 3", "stroke-width": 1.5 }));
    const right = sx(mark.x) > pad.left + plotW * 0.7;  // near the right edge: the label on the left of the line
    g.appendChild(svgElement("text", { x: sx(mark.x) + (right ? -3 : 3), y: pad.top + 11 + 12 * (i % 2),
      "text-anchor": right ? "end" : "start", style: `fill: ${mark.color}; font-weight: 600` }, mark.label));
    svg.appendChild(g);
  });
  for (const s of series) {
    const visible = s.points.filter((p) => usable(p[1]));
    if (!visible.length) continue;
    const g = svgElement("g", { class: "st-series" });
    const path = visible.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    g.appendChild(svgElement("path", { d: path, fill: "none", stroke: s.color, "stroke-width": s.width || 1.6,
      "stroke-dasharray": s.dash || "" }));
    for (const p of visible) {
      const dot = svgElement("circle", { cx: sx(p[0]), cy: sy(p[1]), r: p[2] ? 5 : 2.6, fill: p[2] ? "#c62828" : s.color,
        stroke: p[2] ? "#7f0000" : "none" });
      dot.appendChild(svgElement("title", {}, `${s.label}, epoch ${epochLabel(p[0])}: ${p[1]}`));
      g.appendChild(dot);
    }
    svg.appendChild(g);
  }
  return svg;
}

export function legend(series, extra = []) {
  const box = document.createElement("div");
  box.className = "st-legend";
  for (const s of series.concat(extra)) {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "st-swatch";
    swatch.style.background = s.color;
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(s.label));
    box.appendChild(item);
  }
  return box;
}
