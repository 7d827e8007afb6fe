// The HTML views (the top trials, the event feed, the worker table) and the resources view.

import { h, s } from "./dom.js";
import { asDict, asList, clamp, fmtBytes, fmtSeconds, fmtValue, isNum, short } from "./format.js";
import { drawTimeline, shortWorker } from "./charts.js";
import { pointList } from "./plot.js";
import { EVENT_HISTORY, objectiveOf } from "./state.js";

export function drawTop(ctx, state) {
  const rows = ctx.top.filter((r) => r && typeof r === "object");
  const objectives = Math.max(ctx.dirs.length, ...rows.map((r) => asList(r.v).length));
  const params = [...new Set(rows.flatMap((r) => Object.keys(asDict(r.p))))];
  const reserved = (name) => ["number", "duration"].includes(name) || name.startsWith("value");
  const columns = [
    { key: "number", label: "trial", get: (r) => r.n, show: String },
    ...Array.from({ length: objectives }, (_, i) => ({
      key: objectives > 1 ? `value${i}` : "value", label: ctx.objName(i), get: (r) => objectiveOf(r, i), show: fmtValue,
    })),
    { key: "duration", label: "time", get: (r) => (isNum(r.t1) && isNum(r.t0) ? r.t1 - r.t0 : null), show: fmtSeconds },
    ...params.map((name) => ({ key: reserved(name) ? `p.${name}` : name, label: name, get: (r) => asDict(r.p)[name] })),
  ];
  const column = columns.find((col) => col.key === state.key);
  const sign = state.desc ? -1 : 1;
  const sorted = column ? [...rows].sort((a, b) => sign * compareValues(column.get(a), column.get(b))) : rows;
  const sortBy = (key) => {
    state.desc = state.key === key ? !state.desc : false;
    state.key = key;
    ctx.redraw();
  };
  const head = columns.map((col) => h("th", {
    "data-sort": col.key, title: "sort", onclick: () => sortBy(col.key),
    "aria-sort": col === column ? (state.desc ? "descending" : "ascending") : null,
  }, col.label, col === column ? (state.desc ? " ▾" : " ▴") : ""));
  const cell = (col, r) => {
    const v = col.get(r);
    const show = col.show || fmtValue;
    const text = v === undefined ? "" : v === null && col.show ? "—" : show(v);
    return h("td", { class: typeof v === "number" ? "hpo-num" : null, text });
  };
  const best = ctx.dirs.length === 1 ? rows[0] : null; // the kernel sends the best first
  const row = (r) => h("tr", { class: r === best ? "hpo-best-row" : null }, columns.map((col) => cell(col, r)));
  const body = sorted.map(row);
  const none = h("td", { colspan: columns.length, class: "hpo-empty", text: "no complete trials yet" });
  if (!body.length) body.push(h("tr", {}, none));
  const table = h("table", { class: "hpo-top" }, h("thead", {}, h("tr", {}, head)), h("tbody", {}, body));
  const what = ctx.dirs.length > 1 ? "trials on the Pareto front" : "best trials, best first";
  const caption = `${rows.length} ${what}; click a column to sort`;
  return { node: h("div", { class: "hpo-table-wrap" }, table), caption };
}

function compareValues(a, b) {
  if (a == null || b == null) return (a == null) - (b == null);
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

const EVENT_TONES = [[/fail|error|lost|killed/i, "bad"], [/prune/i, "warn"], [/best/i, "good"]];

export function drawEvents(ctx) {
  const feed = h("div", { class: "hpo-feed" });
  for (const text of ctx.events) {
    const [, time, rest] = /^(\d\d:\d\d:\d\d)\s+(.*)$/s.exec(text) || [null, "", text];
    const tone = EVENT_TONES.find(([re]) => re.test(rest));
    feed.append(h("div", { class: `hpo-event${tone ? ` hpo-event-${tone[1]}` : ""}` },
      h("span", { class: "hpo-event-time", text: time }), h("span", { text: rest })));
  }
  if (!ctx.events.length) feed.append(h("div", { class: "hpo-empty", text: "no events yet" }));
  return { node: feed, caption: `${ctx.events.length} events, newest first (the last ${EVENT_HISTORY} are kept)` };
}

export function drawResources(ctx) {
  const timeline = drawTimeline(ctx);
  return { node: [timeline.node, workerTable(ctx.series)], caption: timeline.caption };
}

function workerTable(series) {
  const head = ["worker", "trial", "CPU", "RSS", "GPU", "GPU memory"].map((t) => h("th", { text: t }));
  const percent = (v) => (isNum(v) ? `${Math.round(v)}%` : "—");
  const rows = [...series.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, sr]) => {
    const last = sr.latest || {};
    const total = last.gpu_memory_total;
    const memory = isNum(last.gpu_memory_used) ? `${fmtBytes(last.gpu_memory_used)} / ${fmtBytes(total)}` : "—";
    return h("tr", {},
      h("td", { class: "hpo-worker-name", title: name, text: short(shortWorker(name), 22) }),
      h("td", { class: "hpo-num", text: last.trial != null ? String(last.trial) : "idle" }),
      sparkCell(sr.cpu, 100, percent(last.cpu)),
      sparkCell(sr.rss, null, fmtBytes(last.rss)),
      sparkCell(sr.gpu, 100, percent(last.gpu_utilization), last.gpu),
      sparkCell(sr.gmem, total || null, memory));
  });
  if (!rows.length) return h("div", { class: "hpo-empty", text: "worker CPU, memory and GPU appear while a run runs" });
  const table = h("table", { class: "hpo-workers" }, h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows));
  return h("div", { class: "hpo-table-wrap" }, table);
}

function sparkCell(values, max, text, title) {
  const finite = values.filter(isNum);
  const cell = h("td", { class: "hpo-spark-cell", title });
  if (finite.length > 1) cell.append(sparkline(values, max ?? Math.max(...finite)));
  cell.append(h("span", { class: "hpo-num", text }));
  return cell;
}

/** The latest samples, right-aligned; at least 30 sample widths wide so that few samples do not stretch. */
function sparkline(values, max, width = 110, height = 22) {
  const step = width / (Math.max(values.length, 30) - 1);
  const offset = width - (values.length - 1) * step;
  const top = max > 0 ? max : 1;
  const y = (v) => height - 1 - clamp(v / top, 0, 1) * (height - 2);
  const pts = values.map((v, i) => (isNum(v) ? [offset + i * step, y(v)] : null)).filter(Boolean);
  const svg = s("svg", { class: "hpo-spark", viewBox: `0 0 ${width} ${height}`, width, height });
  svg.append(s("rect", { class: "hpo-spark-bg", width, height }), s("polyline", { points: pointList(pts) }));
  return svg;
}
