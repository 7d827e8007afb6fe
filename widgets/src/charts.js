// The SVG views: each draws from a view context (see views.js) and returns {node, caption}.
// They draw every row the panel holds: the kernel owns downsampling (a `sync` answer is a
// sample), and past DETAIL_LIMIT marks become one path per colour instead of a node each.

import { label, s, titled } from "./dom.js";
import { asList, clamp, fmtClock, fmtNum, fmtSeconds, fmtValue, isNum, lowerBound, short } from "./format.js";
import {
  CHART_HEIGHT, DETAIL_LIMIT, LEVELS, MARGIN, cross, dot, dots, drawAxes, drawXAxis, finish, level, linearScale,
  makeScale, newChart, pointList, qualityScale, ramp, rampLegend, tickValues, timeTicks, wantLog,
} from "./plot.js";
import { lastValue, objectiveOf } from "./state.js";

export function drawConvergence(ctx, opts) {
  const c = newChart("convergence", ctx.width, CHART_HEIGHT);
  const { rows } = ctx;
  if (!rows.length) return c.empty("no finished trials yet");
  const { box, svg } = c;
  const complete = ctx.complete();
  const pruned = rows.filter((r) => r.s === "pruned");
  const failed = rows.filter((r) => r.s === "fail");
  const ys = [...complete.map(ctx.value), ...pruned.map((r) => lastValue(r.iv))];
  const log = wantLog(opts, ys);
  const xs = makeScale(rows.map((r) => r.n), [box.left, box.right], { pad: 0.02, integer: true });
  const yScale = makeScale(ys, [box.bottom - 6, box.top], { log });
  drawAxes(svg, box, xs, yScale, "trial", ctx.objName(0) + (log ? " (log)" : ""));
  const best = bestSoFar(complete, ctx.value, ctx.direction);
  if (best.length) {
    const d = stepPath(best, xs, yScale, xs.map(Math.max(...rows.map((r) => r.n))));
    svg.append(titled(s("path", { class: "hpo-best-line", d }), "best so far"));
  }
  const prunedAt = (r) => yScale.map(lastValue(r.iv)) ?? box.bottom - 3;
  const stopped = (r) => `trial ${r.n}: pruned${r.ps != null ? ` at step ${r.ps}` : ""}`;
  const scored = (r) => [xs.map(r.n), yScale.map(ctx.value(r)), `trial ${r.n}: ${fmtNum(ctx.value(r), 6)}`];
  const failures = s("g");
  for (const r of failed) {
    failures.append(cross(xs.map(r.n), box.bottom - 4, 3.5, "hpo-mark-fail", `trial ${r.n}: failed ${r.r || ""}`));
  }
  svg.append(
    dots(pruned.map((r) => [xs.map(r.n), prunedAt(r), stopped(r)]), 3, "hpo-dot-pruned"),
    failures,
    dots(complete.map(scored), 3, "hpo-dot"),
  );
  const caption = `${complete.length} complete · ${pruned.length} pruned (grey) · ${failed.length} failed (×)` +
    (opts.logY && !log ? " · log scale needs positive values" : "");
  return finish(c, complete.length + pruned.length + failed.length, caption);
}

/** [trial, value] where the best value so far improved (rows sorted by trial number). */
function bestSoFar(rows, value, direction) {
  const steps = [];
  let best = null;
  for (const r of rows) {
    const v = value(r);
    if (best == null || (direction === "maximize" ? v > best : v < best)) steps.push([r.n, (best = v)]);
  }
  return steps;
}

function stepPath(points, xs, ys, xEnd) {
  let d = `M${xs.map(points[0][0])},${ys.map(points[0][1])}`;
  for (const [n, v] of points.slice(1)) d += `H${xs.map(n)}V${ys.map(v)}`;
  return `${d}H${xEnd}`;
}

export function drawIntermediate(ctx, opts) {
  const c = newChart("intermediate", ctx.width, CHART_HEIGHT);
  const withCurves = ctx.rows.filter((r) => r.iv.length).sort((a, b) => a.n - b.n);
  const shown = withCurves.slice(-300);
  if (!shown.length) return c.empty("no intermediate values reported yet");
  const { box, svg } = c;
  const points = shown.flatMap((r) => r.iv);
  const log = wantLog(opts, points.map((p) => p[1]));
  const xs = makeScale(points.map((p) => p[0]), [box.left, box.right], { pad: 0.02, integer: true });
  const ys = makeScale(points.map((p) => p[1]), [box.bottom, box.top], { log });
  drawAxes(svg, box, xs, ys, "step", ctx.objName(0) + (log ? " (log)" : ""));
  const quality = qualityScale(shown.map(ctx.value), ctx.direction);
  const rank = (r) => (r.s === "complete" ? 1 + quality(ctx.value(r)) : 0); // grey first, best on top
  const [lines, marks] = [s("g", { class: "hpo-curves" }), s("g")];
  for (const r of [...shown].sort((a, b) => rank(a) - rank(b))) curve(r, xs, ys, quality, lines, marks);
  svg.append(lines, marks);
  const caption = `latest ${shown.length} of ${withCurves.length} trials with intermediate values; ` +
    "grey = pruned (× where it stopped) or failed";
  return finish(c, shown.length, caption);
}

function curve(row, xs, ys, quality, lines, marks) {
  const pts = row.iv.map(([step, v]) => [xs.map(step), ys.map(v)]).filter(([x, y]) => x != null && y != null);
  if (!pts.length) return;
  const done = row.s === "complete";
  const label = `trial ${row.n}: ${row.s}` + (done ? ` ${fmtNum(objectiveOf(row), 6)}` : "");
  const attrs = {
    class: done ? "hpo-curve" : `hpo-curve hpo-curve-${row.s}`,
    style: done ? `stroke: ${ramp(quality(objectiveOf(row)))}` : null,
    points: pointList(pts),
  };
  lines.append(pts.length > 1 ? titled(s("polyline", attrs), label) : dot(...pts[0], 1.5, "hpo-dot-small", label));
  if (row.s !== "pruned") return;
  const at = row.iv.findIndex(([step]) => step === row.ps);
  const [x, y] = pts[at >= 0 && at < pts.length ? at : pts.length - 1];
  marks.append(cross(x, y, 3, "hpo-mark-pruned", `trial ${row.n}: pruned at step ${row.ps ?? "?"}`));
}

export function drawParallel(ctx) {
  const c = newChart("parallel", ctx.width, CHART_HEIGHT + 40, { l: 56, r: 60, t: 44, b: 24 });
  const complete = ctx.complete();
  const params = ctx.params().slice(0, 8);
  if (!complete.length || !params.length) return c.empty("no complete trials yet");
  const { box, svg } = c;
  const range = [box.bottom, box.top];
  const spacing = (box.right - box.left) / params.length;
  const axes = params.map((p, i) => ({
    label: p.name, x: box.left + i * spacing, value: (r) => r.p[p.name],
    scale: makeScale(complete.map((r) => r.p[p.name]), range, { log: p.log, categories: p.categories }),
  }));
  const objective = makeScale(complete.map(ctx.value), range);
  axes.push({ label: ctx.objName(0), x: box.right, value: ctx.value, scale: objective });
  const quality = qualityScale(complete.map(ctx.value), ctx.direction);
  const lines = [...complete].sort((a, b) => quality(ctx.value(a)) - quality(ctx.value(b))); // best on top
  const g = s("g", { class: "hpo-lines" });
  const stroke = (t, colour) => `stroke: ${colour}; stroke-opacity: ${(0.35 + 0.6 * t).toFixed(2)}`;
  if (lines.length > DETAIL_LIMIT) {
    const byLevel = Array.from({ length: LEVELS }, () => []); // one path per colour: fast, no titles
    for (const r of lines) byLevel[level(quality(ctx.value(r)))].push(polyPath(axes, r));
    byLevel.forEach((paths, k) => paths.length && g.append(
      s("path", { d: paths.join(""), style: stroke((k + 0.5) / LEVELS, `var(--hpo-q${k})`) })));
  } else {
    for (const r of lines) {
      const t = quality(ctx.value(r));
      const style = stroke(t, ramp(t));
      g.append(titled(s("path", { d: polyPath(axes, r), style }), `trial ${r.n}: ${fmtNum(ctx.value(r), 6)}`));
    }
  }
  svg.append(g, ...axes.map((axis) => verticalAxis(axis, box, spacing)));
  rampLegend(svg, c.width - 4, 4);
  const caption = `${lines.length} complete trials; the ${params.length} most important params`;
  return finish(c, lines.length, caption);
}

/** One trial's path across the axes; it breaks where the trial has no value (a conditional param). */
function polyPath(axes, row) {
  let [d, pen] = ["", "M"];
  for (const axis of axes) {
    const y = axis.scale.map(axis.value(row));
    if (y != null) d += `${pen}${axis.x.toFixed(1)},${y.toFixed(1)}`;
    pen = y == null ? "M" : "L";
  }
  return d;
}

function verticalAxis(axis, box, spacing) {
  const g = s("g", { class: "hpo-axis hpo-paxis" });
  g.append(s("line", { x1: axis.x, x2: axis.x, y1: box.top, y2: box.bottom }));
  const name = short(axis.label, Math.max(4, Math.floor(spacing / 6.5)));
  g.append(titled(label(axis.x, box.top - 20, name, "middle", "hpo-axis-label"), axis.label));
  for (const t of tickValues(axis.scale, 4, box.bottom - box.top, 14)) {
    const y = axis.scale.map(t);
    g.append(s("line", { x1: axis.x - 3, x2: axis.x, y1: y, y2: y }));
    g.append(label(axis.x - 5, y + 3.5, short(axis.scale.format(t), 8), "end", "hpo-halo"));
  }
  return g;
}

export function drawSlice(ctx, opts) {
  const complete = ctx.complete();
  const params = ctx.params().slice(0, 4);
  const cols = ctx.width >= 980 ? Math.max(1, params.length) : Math.min(2, Math.max(1, params.length));
  const [panelW, panelH] = [ctx.width / cols, 210];
  const c = newChart("slice", ctx.width, panelH * Math.max(1, Math.ceil(params.length / cols)));
  if (!complete.length || !params.length) return c.empty("no complete trials yet");
  const values = complete.map(ctx.value);
  const log = wantLog(opts, values);
  const age = new Map(complete.map((r, i) => [r, i / Math.max(1, complete.length - 1)]));
  const fast = complete.length * params.length > DETAIL_LIMIT;
  let points = 0;
  params.forEach((p, i) => {
    const [x0, y0] = [(i % cols) * panelW, Math.floor(i / cols) * panelH];
    const box = { left: x0 + 60, right: x0 + panelW - 12, top: y0 + 10, bottom: y0 + panelH - 40 };
    const rows = complete.filter((r) => r.p[p.name] !== undefined);
    const xs = makeScale(rows.map((r) => r.p[p.name]), [box.left, box.right], { log: p.log, categories: p.categories });
    const ys = makeScale(values, [box.bottom, box.top], { log });
    drawAxes(c.svg, box, xs, ys, p.name + (p.log ? " (log)" : ""), i % cols ? "" : ctx.objName(0), x0 + 14);
    const byAge = Array.from({ length: LEVELS }, () => []); // one group per colour: later = stronger
    for (const r of rows) {
      const jitter = xs.kind === "band" ? (((r.n * 2654435761) % 1000) / 1000 - 0.5) * xs.step * 0.5 : 0;
      const [x, y] = [xs.map(r.p[p.name]), ys.map(ctx.value(r))];
      if (x == null || y == null) continue;
      const title = `trial ${r.n}: ${p.name}=${fmtValue(r.p[p.name])} → ${fmtNum(ctx.value(r), 6)}`;
      byAge[level(age.get(r))].push([x + jitter, y, title]);
      points++;
    }
    c.svg.append(...byAge.map((marks, k) => dots(marks, 2.6, "hpo-dot-ramp", `var(--hpo-q${k})`, fast)));
  });
  return finish(c, points, "one dot per complete trial; later trials are drawn stronger");
}

export function drawContour(ctx) {
  const c = newChart("contour", ctx.width, CHART_HEIGHT + 40, { ...MARGIN, t: 22 });
  const [px, py] = ctx.params().filter((p) => !p.categorical);
  if (!py) return c.empty("needs two numeric parameters");
  const rows = ctx.complete().filter((r) => isNum(r.p[px.name]) && isNum(r.p[py.name]));
  if (!rows.length) return c.empty("no complete trials yet");
  const { box, svg } = c;
  const xs = makeScale(rows.map((r) => r.p[px.name]), [box.left, box.right], { log: px.log, pad: 0.02 });
  const ys = makeScale(rows.map((r) => r.p[py.name]), [box.bottom, box.top], { log: py.log, pad: 0.02 });
  const at = (r) => [xs.map(r.p[px.name]), ys.map(r.p[py.name])];
  const bins = clamp(Math.round(Math.sqrt(rows.length / 1.5)), 6, 20);
  const xEdges = binEdges(rows.map((r) => at(r)[0]), box.left, box.right, bins);
  const yEdges = binEdges(rows.map((r) => at(r)[1]), box.top, box.bottom, bins);
  const cells = binCells(rows, at, ctx.value, xEdges, yEdges);
  const quality = qualityScale(cells.map((cell) => cell.mean), ctx.direction);
  const heat = s("g", { class: "hpo-cells" });
  for (const { x, y, w, h: height, mean, count } of cells) {
    const rect = s("rect", { x, y, width: w, height, style: `fill: ${ramp(quality(mean))}` });
    heat.append(titled(rect, `mean ${fmtNum(mean, 5)} over ${count} trial${count > 1 ? "s" : ""}`));
  }
  drawAxes(svg, box, xs, ys, px.name + (px.log ? " (log)" : ""), py.name + (py.log ? " (log)" : ""));
  const marks = rows.map((r) => [...at(r), `trial ${r.n}: ${fmtNum(ctx.value(r), 6)}`]);
  svg.append(heat, dots(marks, 2.4, "hpo-dot-onheat"));
  svg.setAttribute("data-cells", String(cells.length));
  rampLegend(svg, c.width - 4, 4);
  const caption = `mean ${ctx.objName(0)} per cell over ${px.name} × ${py.name}; dots: trials`;
  return finish(c, rows.length, caption);
}

/** Cell edges in pixels: one cell per distinct value when there are few (a step or int param),
 * else `n` even cells (even in pixel space, so log axes bin evenly too). */
function binEdges(positions, lo, hi, n) {
  const distinct = [...new Set(positions.map((p) => Math.round(p)))].sort((a, b) => a - b);
  if (distinct.length <= n) return [lo, ...distinct.slice(1).map((p, i) => (p + distinct[i]) / 2), hi];
  return Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);
}

/** Mean value per non-empty cell of the grid the edges make. */
function binCells(rows, position, value, xEdges, yEdges) {
  const index = (edges, p) => clamp(lowerBound(edges, p) - 1, 0, edges.length - 2);
  const cells = new Map();
  for (const r of rows) {
    const [x, y] = position(r);
    if (x == null || y == null) continue;
    const [i, j] = [index(xEdges, x), index(yEdges, y)];
    const key = i * yEdges.length + j;
    if (!cells.has(key)) {
      const [w, h] = [xEdges[i + 1] - xEdges[i], yEdges[j + 1] - yEdges[j]];
      cells.set(key, { x: xEdges[i], y: yEdges[j], w, h, sum: 0, count: 0 });
    }
    const cell = cells.get(key);
    cell.sum += value(r);
    cell.count += 1;
  }
  return [...cells.values()].map((cell) => ({ ...cell, mean: cell.sum / cell.count }));
}

/** Every complete trial over the first two objectives; the kernel's Pareto front (the `top`
 * trait of a study with several objectives, non-dominated in all of them) in orange. */
export function drawPareto(ctx) {
  const { dirs } = ctx;
  const c = newChart("pareto", ctx.width, CHART_HEIGHT);
  const scored = (r) => r && r.s === "complete" && objectiveOf(r, 0) != null && objectiveOf(r, 1) != null;
  const front = ctx.top.filter(scored);
  const onFront = new Set(front.map((r) => r.n));
  const rest = ctx.rows.filter((r) => scored(r) && !onFront.has(r.n));
  const count = rest.length + front.length;
  if (dirs.length < 2) return c.empty("the study has one objective");
  if (!count) return c.empty("no complete trials yet");
  const { box, svg } = c;
  const both = [...rest, ...front];
  const xs = makeScale(both.map((r) => r.v[0]), [box.left, box.right]);
  const ys = makeScale(both.map((r) => r.v[1]), [box.bottom, box.top]);
  drawAxes(svg, box, xs, ys, `${ctx.objName(0)} (${dirs[0]})`, `${ctx.objName(1)} (${dirs[1]})`);
  const at = (r) => [xs.map(r.v[0]), ys.map(r.v[1])];
  const title = (r) => `trial ${r.n}: ${fmtNum(r.v[0], 5)}, ${fmtNum(r.v[1], 5)}`;
  const mark = (r) => [...at(r), title(r)];
  const staircase = pointList([...front].sort((a, b) => a.v[0] - b.v[0]).map(at));
  svg.append(
    dots(rest.map(mark), 2.6, "hpo-dot-muted"),
    ...(dirs.length === 2 ? [s("polyline", { class: "hpo-front-line", points: staircase })] : []), // a line in 2-D only
    dots(front.map(mark), 4, "hpo-dot-front"),
  );
  const more = dirs.length > 2 ? `; first 2 of ${dirs.length} objectives` : "";
  return finish(c, count, `${front.length} non-dominated (orange) of ${count} complete trials${more}`);
}

export function drawImportance(ctx) {
  const imp = ctx.importance;
  const params = asList(imp.params).filter((p) => Array.isArray(p) && isNum(p[1]));
  const labelW = clamp(Math.max(0, ...params.map((p) => String(p[0]).length)) * 7 + 12, 60, 180);
  const height = Math.max(90, 26 * params.length + 44);
  const c = newChart("importance", ctx.width, height, { l: labelW, r: 60, t: 10, b: 30 });
  if (!params.length) return c.empty("importance appears once enough trials are complete");
  const { box } = c;
  const xs = makeScale([0, Math.max(...params.map((p) => p[1]))], [box.left, box.right], { pad: 0 });
  const band = (box.bottom - box.top) / params.length;
  const g = s("g", { class: "hpo-axis" });
  drawXAxis(g, xs, box, "importance");
  params.forEach(([name, value], i) => {
    const y = box.top + (i + 0.5) * band;
    const width = Math.max(1, xs.map(value) - box.left);
    const bar = s("rect", { class: "hpo-bar-mark", x: box.left, y: y - 8, width, height: 16 });
    g.append(titled(bar, `${name}: ${fmtNum(value, 4)}`));
    g.append(label(box.left - 6, y + 4, short(String(name), 26), "end", "hpo-bar-label"));
    g.append(label(box.left + width + 5, y + 4, fmtNum(value, 3)));
  });
  c.svg.append(g);
  return finish(c, params.length, `computed at ${imp.at ?? "?"} trials${imp.evaluator ? ` (${imp.evaluator})` : ""}`);
}

/** One lane per worker; a rectangle per trial it ran, and the running trial up to now. */
export function drawTimeline(ctx) {
  const { progress } = ctx;
  const timed = ctx.rows.filter((r) => isNum(r.t0) && isNum(r.t1) && r.w != null);
  const rows = timed.sort((a, b) => a.t1 - b.t1).slice(-600);
  const running = progress.ended_at == null ? asList(progress.resources).filter((r) => r && r.trial != null) : [];
  const workers = [...new Set([...rows.map((r) => String(r.w)), ...running.map((r) => String(r.worker))])].sort();
  const laneH = workers.length > 12 ? 14 : 26;
  const height = Math.max(120, workers.length * laneH + 60);
  const c = newChart("resources", ctx.width, height, { l: 130, r: 16, t: 8, b: 36 });
  if (!workers.length) return c.empty("no trial has run on a worker yet");
  const { box, svg } = c;
  const now = Date.now() / 1000;
  const lastEnd = Math.max(...rows.map((r) => r.t1));
  const end = running.length && (!isNum(lastEnd) || Math.abs(now - lastEnd) < 3600) ? now : lastEnd;
  const start = Math.min(...rows.map((r) => r.t0), end - 60);
  const xs = linearScale([start, end], [box.left, box.right]);
  const clock = { ...xs, ticks: (n) => timeTicks(start, end, n), format: (t) => fmtClock(t, end - start < 180) };
  const lane = new Map(workers.map((w, i) => [w, box.top + i * laneH]));
  const g = s("g", { class: "hpo-axis" });
  drawXAxis(g, clock, box, "");
  for (const [w, y] of lane) {
    g.append(titled(label(box.left - 6, y + laneH / 2 + 4, short(shortWorker(w), 18), "end"), w));
  }
  const marks = s("g", { class: "hpo-lanes" });
  const span = (cls, x0, x1, y, title) => {
    const width = Math.max(1.5, x1 - x0).toFixed(1);
    const rect = s("rect", { class: `hpo-span hpo-span-${cls}`, x: x0.toFixed(1), y: y + 2, width, height: laneH - 4 });
    return titled(rect, title);
  };
  for (const r of rows) {
    const title = `trial ${r.n}, ${fmtSeconds(r.t1 - r.t0)}${r.g ? ` on ${r.g}` : ""} (${r.s})`;
    marks.append(span(r.s, xs.map(r.t0), xs.map(r.t1), lane.get(String(r.w)), title));
  }
  for (const r of running) {
    const from = Math.max(start, ...rows.filter((x) => String(x.w) === String(r.worker)).map((x) => x.t1));
    marks.append(span("running", xs.map(from), box.right, lane.get(String(r.worker)), `trial ${r.trial}, running`));
  }
  svg.append(g, marks);
  const caption = `which trial held each worker (last ${rows.length} finished trials; dashed = running)`;
  return finish(c, rows.length + running.length, caption);
}

export const shortWorker = (name) => name.replace(/^[a-z]+:\/\//, "");
