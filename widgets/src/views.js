// The tabs' views: which data each depends on, its frame (toolbar, body, caption), the context
// it draws from, and drawing it without letting one bad value break the panel.

import { drawContour, drawConvergence, drawImportance, drawIntermediate, drawParallel, drawPareto, drawSlice }
  from "./charts.js";
import { h } from "./dom.js";
import { asList } from "./format.js";
import { objectiveName, objectiveOf, paramInfo, read } from "./state.js";
import { drawEvents, drawResources, drawTop } from "./tables.js";

/** Changes that alter the rows' derived data (complete rows, param info). */
export const ROW_DEPS = ["rows", "study", "space", "importance"];
export const VIEWS = [
  { name: "setup", label: "Setup", deps: [] },
  { name: "convergence", label: "Convergence", deps: ["rows", "study"], draw: drawConvergence, logY: true },
  { name: "top", label: "Top", deps: ["top", "study"], draw: drawTop },
  { name: "importance", label: "Importance", deps: ["importance"], draw: drawImportance },
  { name: "parallel", label: "Parallel", deps: ROW_DEPS, draw: drawParallel },
  { name: "slice", label: "Slice", deps: ROW_DEPS, draw: drawSlice, logY: true },
  { name: "contour", label: "Contour", deps: ROW_DEPS, draw: drawContour },
  { name: "intermediate", label: "Intermediate", deps: ["rows", "study"], draw: drawIntermediate, logY: true },
  { name: "pareto", label: "Pareto", deps: ["rows", "study", "top"], draw: drawPareto, multi: true },
  { name: "resources", label: "Resources", deps: ["rows", "resources"], draw: drawResources },
  { name: "events", label: "Events", deps: ["events"], draw: drawEvents },
];

export function buildView(spec, schedule) {
  const state = { logY: false, key: null, desc: false };
  const body = h("div", { class: "hpo-view-body" });
  const caption = h("div", { class: "hpo-caption" });
  const logY = h("input", { type: "checkbox", "data-option": "log-y" });
  logY.addEventListener("change", () => {
    state.logY = logY.checked;
    schedule("view");
  });
  const toolbar = spec.logY ? h("div", { class: "hpo-toolbar" }, h("label", {}, logY, " log y")) : null;
  const node = h("div", { class: "hpo-view", "data-view": spec.name, hidden: true }, toolbar, body, caption);
  return { spec, state, node, body, caption, stale: true, drawnAt: 0, cost: 0, timer: 0 };
}

/** What a view draws from: the store's rows (derived data memoized per rows version) and traits. */
export function viewContext(model, store, width, redraw) {
  const study = read(model, "study");
  const dirs = asList(study.directions).length ? study.directions : ["minimize"];
  const memo = (key, make) => {
    if (store.memo.version !== store.version) store.memo = { version: store.version };
    if (!(key in store.memo)) store.memo[key] = make();
    return store.memo[key];
  };
  const byNumber = () => store.rows.filter((r) => r.s === "complete" && objectiveOf(r) != null)
    .sort((a, b) => a.n - b.n);
  return {
    rows: store.rows, study, dirs, direction: dirs[0], width,
    value: (r) => objectiveOf(r, 0),
    objName: (i) => objectiveName(study, i),
    complete: () => memo("complete", byNumber),
    params: () => memo("params", () => paramInfo(store.rows, read(model, "space"), read(model, "importance"))),
    importance: read(model, "importance"),
    top: read(model, "top"),
    progress: read(model, "progress"),
    events: store.events,
    series: store.series,
    redraw,
  };
}

/** Draws `view` from `ctx`; an error shows in the view instead. Records how long it took. */
export function drawView(view, ctx) {
  const started = performance.now();
  try {
    const out = view.spec.draw(ctx, view.state);
    view.body.replaceChildren(...[out.node].flat());
    view.caption.textContent = out.caption || "";
  } catch (err) {
    const text = `could not draw this view: ${err && err.message}`;
    view.body.replaceChildren(h("div", { class: "hpo-empty", text }));
  }
  [view.stale, view.drawnAt, view.cost] = [false, performance.now(), performance.now() - started];
}
