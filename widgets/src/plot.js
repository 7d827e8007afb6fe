// The chart kit: scales, ticks, axes, marks and the colour ramp, drawn as plain SVG.

import { label, s, titled } from "./dom.js";
import { clamp, fmtNum, fmtValue, isNum, lowerBound, short } from "./format.js";

export const CHART_HEIGHT = 300;
export const MARGIN = { l: 68, r: 18, t: 14, b: 42 };
export const LEVELS = 8; // colour ramp steps: --hpo-q0 (worst) .. --hpo-q7 (best), defined in panel.css
export const DETAIL_LIMIT = 1500; // more dots than this are drawn as one path, without a hover title each

/** Maps an objective value to 0 (worst) .. 1 (best) by its rank among `values`. */
export function qualityScale(values, direction) {
  const sorted = values.filter(isNum).sort((a, b) => a - b);
  return (v) => {
    if (!isNum(v) || sorted.length < 2) return 1;
    const q = Math.min(1, lowerBound(sorted, v) / (sorted.length - 1));
    return direction === "maximize" ? q : 1 - q;
  };
}

export const level = (t) => clamp(Math.floor(t * LEVELS), 0, LEVELS - 1);
export const ramp = (t) => `var(--hpo-q${level(t)})`;

function niceTicks(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const step = (f >= 7.07 ? 10 : f >= 3.16 ? 5 : f >= 1.41 ? 2 : 1) * mag;
  const ticks = [];
  for (let i = Math.ceil(lo / step); i * step <= hi + step * 1e-9; i++) ticks.push(+(i * step).toPrecision(12));
  return ticks;
}

/** Powers of ten; 1-2-5 or 1..9 times them when the range is too short for three of those. */
function logTicks(lo, hi, count) {
  const [a, b] = [Math.floor(Math.log10(lo)), Math.ceil(Math.log10(hi))];
  const within = (mantissas) => {
    const ticks = [];
    for (let e = a; e <= b; e++) for (const m of mantissas) ticks.push(+(m * 10 ** e).toPrecision(12));
    return ticks.filter((v) => v >= lo && v <= hi);
  };
  let ticks = within([1]);
  for (const mantissas of [[1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) if (ticks.length < 3) ticks = within(mantissas);
  const every = Math.ceil(ticks.length / count);
  return ticks.filter((_, i) => i % every === 0);
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];

/** Ticks on whole seconds, minutes or hours of epoch time. */
export function timeTicks(lo, hi, count) {
  const step = TIME_STEPS.find((t) => (hi - lo) / t <= count) || 86400 * Math.ceil((hi - lo) / count / 86400);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push(t);
  return ticks;
}

export function linearScale([d0, d1], [r0, r1]) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return {
    kind: "linear",
    map: (v) => (isNum(v) ? r0 + (v - d0) * k : null),
    ticks: (n = 5) => niceTicks(d0, d1, n),
    format: (t) => fmtNum(t),
  };
}

function logScale([d0, d1], range) {
  const inner = linearScale([Math.log10(d0), Math.log10(d1)], range);
  const map = (v) => (isNum(v) && v > 0 ? inner.map(Math.log10(v)) : null);
  return { ...inner, kind: "log", map, ticks: (n = 5) => logTicks(d0, d1, n) };
}

function bandScale(categories, [r0, r1]) {
  const index = new Map(categories.map((c, i) => [JSON.stringify(c), i]));
  const step = (r1 - r0) / Math.max(1, categories.length);
  const map = (v) => (index.has(JSON.stringify(v)) ? r0 + step * (index.get(JSON.stringify(v)) + 0.5) : null);
  return { kind: "band", step, map, ticks: () => categories, format: fmtValue };
}

function extent(values, positiveOnly = false) {
  let [lo, hi] = [Infinity, -Infinity];
  for (const v of values) {
    if (!isNum(v) || (positiveOnly && v <= 0)) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return lo <= hi ? [lo, hi] : null;
}

/** A band scale for categories, else a padded log or linear scale over the finite values. */
export function makeScale(values, range, { log = false, categories = null, pad = 0.04, integer = false } = {}) {
  if (categories) return bandScale(categories, range);
  const positive = log ? extent(values, true) : null;
  if (positive) {
    let [lo, hi] = positive.map(Math.log10);
    if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
    const p = (hi - lo) * pad;
    return logScale([10 ** (lo - p), 10 ** (hi + p)], range);
  }
  let [lo, hi] = extent(values) || [0, 1];
  const flat = hi - lo < 1e-12 * Math.max(1, Math.abs(lo));
  if (flat) [lo, hi] = [lo - (Math.abs(lo) * 0.1 || 1), hi + (Math.abs(hi) * 0.1 || 1)];
  const p = (hi - lo) * pad;
  const scale = linearScale([lo - p, hi + p], range);
  if (integer) scale.ticks = (n = 5) => niceTicks(lo - p, hi + p, n).filter(Number.isInteger);
  return scale;
}

/** Tick values; band scales keep every k-th category so that labels do not collide. */
export function tickValues(scale, count, length, labelSize) {
  if (scale.kind !== "band") return scale.ticks(count);
  const all = scale.ticks();
  const every = Math.ceil(all.length / Math.max(1, Math.floor(length / labelSize)));
  return all.filter((_, i) => i % every === 0);
}

/** A chart of one view: its `svg` (sized by viewBox), its plot `box`, and `empty(message)`. */
export function newChart(view, width, height, margin = MARGIN) {
  const svg = s("svg", {
    class: "hpo-chart", "data-chart": view, "data-points": 0, width: "100%",
    viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "xMidYMid meet",
  });
  const box = { left: margin.l, right: width - margin.r, top: margin.t, bottom: height - margin.b };
  const empty = (message) => {
    svg.append(label(width / 2, height / 2, message, "middle", "hpo-empty-text"));
    return { node: svg, caption: "" };
  };
  return { svg, box, width, height, empty };
}

export function finish(chart, points, caption = "") {
  chart.svg.setAttribute("data-points", String(points));
  return { node: chart.svg, caption };
}

export function drawXAxis(g, scale, box, title) {
  g.append(s("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom }));
  const chars = scale.kind === "band" ? Math.max(3, Math.floor(scale.step / 6.5)) : 12;
  const count = Math.max(2, Math.floor((box.right - box.left) / 80));
  for (const t of tickValues(scale, count, box.right - box.left, 56)) {
    const x = scale.map(t);
    g.append(s("line", { x1: x, x2: x, y1: box.bottom, y2: box.bottom + 4 }));
    g.append(label(x, box.bottom + 15, short(scale.format(t), chars), "middle"));
  }
  if (title) g.append(label((box.left + box.right) / 2, box.bottom + 32, title, "middle", "hpo-axis-label"));
}

function drawYAxis(g, scale, box, title, titleX) {
  g.append(s("line", { x1: box.left, x2: box.left, y1: box.top, y2: box.bottom }));
  const count = Math.max(2, Math.floor((box.bottom - box.top) / 40));
  for (const t of tickValues(scale, count, box.bottom - box.top, 16)) {
    const y = scale.map(t);
    g.append(s("line", { class: "hpo-grid", x1: box.left, x2: box.right, y1: y, y2: y }));
    g.append(label(box.left - 6, y + 3.5, short(scale.format(t), 9), "end"));
  }
  if (!title) return;
  const transform = `translate(${titleX},${(box.top + box.bottom) / 2}) rotate(-90)`;
  g.append(s("text", { class: "hpo-axis-label", transform, "text-anchor": "middle" }, short(title, 40)));
}

export function drawAxes(svg, box, xs, ys, xLabel, yLabel, labelX = 14) {
  const g = s("g", { class: "hpo-axis" });
  drawYAxis(g, ys, box, yLabel, labelX);
  drawXAxis(g, xs, box, xLabel);
  svg.append(g);
}

export function dot(x, y, r, cls, title, fill) {
  const style = fill ? `fill: ${fill}` : null;
  return titled(s("circle", { class: cls, cx: x.toFixed(1), cy: y.toFixed(1), r, style }), title);
}

/** Dots at `marks` ([x, y, title]); past DETAIL_LIMIT they become one path (fast, no titles). */
export function dots(marks, r, cls, fill = null, fast = marks.length > DETAIL_LIMIT) {
  if (fast) {
    const arc = `a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0`;
    const d = marks.map(([x, y]) => `M${(x - r).toFixed(1)},${y.toFixed(1)}${arc}`).join("");
    return s("path", { class: cls, d, style: fill && `fill: ${fill}` });
  }
  const g = s("g");
  for (const [x, y, title] of marks) g.append(dot(x, y, r, cls, title, fill));
  return g;
}

export function cross(x, y, size, cls, title) {
  const d = `M${x - size},${y - size}L${x + size},${y + size}M${x - size},${y + size}L${x + size},${y - size}`;
  return titled(s("path", { class: cls, d }), title);
}

export const pointList = (pts) => pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");

export function rampLegend(svg, right, y) {
  const x = right - LEVELS * 10 - 40;
  const g = s("g", { class: "hpo-legend" });
  g.append(label(x - 4, y + 8, "worse", "end"));
  for (let i = 0; i < LEVELS; i++) {
    g.append(s("rect", { x: x + i * 10, y, width: 10, height: 9, style: `fill: var(--hpo-q${i})` }));
  }
  g.append(label(x + LEVELS * 10 + 4, y + 8, "better"));
  svg.append(g);
}

/** A log y scale only when asked and every value is positive. */
export const wantLog = (opts, values) => !!opts.logY && values.some(isNum) && values.every((v) => !isNum(v) || v > 0);
