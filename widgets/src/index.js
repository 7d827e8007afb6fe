// hpo_nb control panel: header and run buttons, tabs over live charts, the search-space editor.
// It only observes traits and sends commands (the contract is widgets/PROTOCOL.md, named in
// protocol.js). Charts are plain SVG drawn with DOM calls; nothing is loaded from anywhere.
// anywidget loads one module: `npm run build` bundles this entry and its imports into panel.js.

import { h } from "./dom.js";
import { asList, clamp } from "./format.js";
import { buildConfigEditor, buildSpaceEditor } from "./editor.js";
import { buildHeader } from "./header.js";
import { COMMANDS, TRAITS } from "./protocol.js";
import { newStore, read, receiveTrials, sampleResources, takeEvents } from "./state.js";
import { ROW_DEPS, VIEWS, buildView, drawView, viewContext } from "./views.js";

const REDRAW_COST = 6; // a data-driven redraw waits this many times the last draw's duration
const HEADER_DEPS = ["progress", "study", "can", "status", "exports", "config", "top", "init"];
const SETUP_DEPS = ["space", "draft_error", "can", "config", "options", "config_error", "init"];
const ACTIVE_STATES = ["starting", "running", "stopping"];

/** Runs one part of a redraw: a bad value breaks that part only, never the whole panel. */
function guarded(part, fn) {
  try {
    fn();
  } catch (err) {
    console.warn(`hpo_nb panel: could not update the ${part}:`, err);
  }
}

function render({ model, el: root }) {
  root.classList.add("hpo-panel");
  const data = newStore();
  const dirty = new Set(["init"]);
  let [frame, current, chosen, lastWidth] = [0, null, false, 0];
  const schedule = (kind) => {
    if (ROW_DEPS.includes(kind)) data.version++;
    dirty.add(kind);
    if (!frame) frame = requestAnimationFrame(flush);
  };

  const header = buildHeader(model, root);
  const space = buildSpaceEditor(model);
  const config = buildConfigEditor(model);
  const views = new Map(VIEWS.map((spec) => [spec.name, buildView(spec, schedule)]));
  views.get("setup").body.append(space.node, config.node);
  const tabs = VIEWS.map((spec) => h("button", {
    type: "button", class: "hpo-tab", role: "tab", "data-tab": spec.name, text: spec.label, hidden: spec.multi,
    onclick: () => {
      chosen = true;
      show(spec.name);
    },
  }));
  const viewArea = h("div", { class: "hpo-views" }, [...views.values()].map((v) => v.node));
  root.replaceChildren(header.node, h("div", { class: "hpo-tabs", role: "tablist" }, tabs), viewArea);

  function show(name) {
    current = name;
    for (const tab of tabs) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    for (const [key, view] of views) view.node.hidden = key !== name;
    schedule("view");
  }

  /** Until the user picks a tab: the editor before anything ran, the convergence chart after. */
  function defaultView() {
    const p = read(model, "progress");
    return data.rows.length || p.finished > 0 || ACTIVE_STATES.includes(p.state) ? "convergence" : "setup";
  }

  function redraw(view) {
    lastWidth = viewArea.clientWidth;
    const width = clamp(Math.floor(lastWidth || 760), 320, 1800);
    drawView(view, viewContext(model, data, width, () => schedule("view")));
  }

  /** Redraws the current view: at once when shown or resized, else no more often than its cost allows. */
  function refresh(view, changed) {
    if (!view.spec.draw) return;
    if (view.spec.deps.some((d) => changed.has(d))) view.stale = true;
    const wait = view.drawnAt + REDRAW_COST * view.cost - performance.now();
    if (changed.has("view") || changed.has("size") || (view.stale && wait <= 0)) redraw(view);
    else if (view.stale && !view.timer) {
      view.timer = setTimeout(() => {
        view.timer = 0;
        schedule("due");
      }, wait);
    }
  }

  function flush() {
    frame = 0;
    const changed = new Set(dirty);
    dirty.clear();
    const any = (deps) => deps.some((d) => changed.has(d));
    if (any(HEADER_DEPS)) guarded("header", header.update);
    if (any(SETUP_DEPS)) {
      guarded("space editor", () => space.update(changed));
      guarded("run settings", config.update);
    }
    const multi = asList(read(model, "study").directions).length > 1;
    tabs.find((t) => t.dataset.tab === "pareto").hidden = !multi;
    if (current === "pareto" && !multi) show("convergence");
    else if (!chosen && current !== defaultView()) show(defaultView());
    refresh(views.get(current), changed);
  }

  function onMessage(msg) {
    if (!receiveTrials(data, msg, model)) return;
    root.dataset.rows = String(data.rows.length);
    schedule("rows");
  }

  function onProgress() {
    const p = read(model, "progress");
    if (takeEvents(data.events, data.seen, p)) schedule("events");
    if (sampleResources(data.series, p)) schedule("resources");
  }

  const handlers = [
    ...Object.keys(TRAITS).map((name) => [`change:${name}`, () => schedule(name)]),
    ["change:progress", onProgress],
    ["msg:custom", onMessage],
  ];
  for (const [event, fn] of handlers) model.on(event, fn);
  const resize = new ResizeObserver(() => {
    if (Math.abs(viewArea.clientWidth - lastWidth) > 8) schedule("size");
  });
  resize.observe(viewArea);
  const ticker = setInterval(header.tick, 1000);
  root.dataset.rows = "0";
  onProgress();
  show(defaultView());
  model.send({ cmd: COMMANDS.SYNC });

  return () => {
    cancelAnimationFrame(frame);
    for (const view of views.values()) clearTimeout(view.timer);
    clearInterval(ticker);
    resize.disconnect();
    space.cancel();
    config.cancel();
    for (const [event, fn] of handlers) model.off(event, fn);
  };
}

export default { render };
