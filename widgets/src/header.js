// The header: study, state, progress bar, counts, timing, best trial, and the run buttons.

import { h } from "./dom.js";
import { asDict, asList, fmtDuration, fmtValue, isNum } from "./format.js";
import { COMMANDS } from "./protocol.js";
import { objectiveName, read } from "./state.js";

const COUNT_KINDS = ["complete", "pruned", "failed", "running"];
const BUTTONS = [
  [COMMANDS.START, "Start", "run trials until the target"],
  [COMMANDS.STOP, "Stop", "let running trials finish, then stop"],
  [COMMANDS.STOP_NOW, "Stop now", "cancel running trials now (they count as failed)"],
  [COMMANDS.RESUME, "Resume", "continue the stopped run"],
  [COMMANDS.EXPORT, "Export", "write every chart as PNG, SVG and HTML"],
];

export function buildHeader(model, root) {
  const spans = ["hpo-study", "hpo-state", "hpo-reason", "hpo-origin"].map((c) => h("span", { class: c }));
  const [name, badge, reason, origin] = spans;
  const fill = h("div", { class: "hpo-bar-fill" });
  const bar = h("div", { class: "hpo-bar" }, fill);
  const fraction = h("span", { class: "hpo-fraction" });
  const counts = COUNT_KINDS.map((kind) =>
    h("span", { class: `hpo-count hpo-${kind}`, "data-kind": kind }, h("b"), ` ${kind}`));
  const timing = h("span", { class: "hpo-timing" });
  const [best, sampler, failure] = ["hpo-best", "hpo-sampler", "hpo-failure"].map((c) => h("div", { class: c }));
  const buttons = BUTTONS.map(([cmd, label, title]) => h("button", {
    type: "button", class: `hpo-btn hpo-btn-${cmd}`, "data-cmd": cmd, text: label, title, disabled: true,
    onclick: () => model.send({ cmd }),
  }));
  const status = h("div", { class: "hpo-status" });
  const exports = h("div", { class: "hpo-exports" });
  const node = h("div", { class: "hpo-head" },
    h("div", { class: "hpo-title" }, name, badge, reason, h("span", { class: "hpo-grow" }), origin),
    bar,
    h("div", { class: "hpo-stats" }, fraction, counts, h("span", { class: "hpo-grow" }), timing),
    best, sampler, failure,
    h("div", { class: "hpo-actions" }, buttons, status),
    exports);

  function update() {
    const [p, study, can, config] = ["progress", "study", "can", "config"].map((t) => read(model, t));
    const state = p.state || "idle";
    Object.assign(root.dataset, { state, finished: String(p.finished ?? 0), study: study.name || p.study || "" });
    name.textContent = study.name || p.study || "study";
    name.title = study.storage || "";
    badge.className = `hpo-state hpo-state-${state}`;
    badge.textContent = state;
    reason.textContent = p.reason || p.note || "";
    const goals = asList(study.directions).map((d, i) => (study.objective ? `${d} ${objectiveName(study, i)}` : d));
    const parent = study.parent ? `branched from ${study.parent}` : "";
    origin.textContent = [goals.join(", "), parent].filter(Boolean).join(" · ");
    const target = p.target || config.n_trials || 0;
    fill.style.width = `${target > 0 ? Math.min(100, (100 * (p.finished || 0)) / target) : 0}%`;
    bar.title = `${p.finished || 0} of ${target} trials finished`;
    fraction.textContent = `${p.finished || 0}/${target}`;
    COUNT_KINDS.forEach((kind, i) => {
      counts[i].dataset.value = String(p[kind] || 0);
      counts[i].firstChild.textContent = String(p[kind] || 0);
    });
    showBest(best, p, study, read(model, "top"));
    const algorithm = p.sampler || config.sampler;
    const parts = [algorithm && `sampler ${algorithm}`, config.pruner && `pruner ${config.pruner}`];
    sampler.textContent = [...parts, p.retried && `${p.retried} retried`].filter(Boolean).join(" · ");
    failure.textContent = p.last_failure ? `last failure: ${p.last_failure}` : "";
    for (const b of buttons) b.disabled = !can[b.dataset.cmd];
    status.textContent = status.title = read(model, "status");
    const paths = read(model, "exports");
    exports.textContent = paths.length ? `exported: ${paths.join(", ")}` : "";
    tick();
  }
  const tick = () => {
    timing.textContent = timingText(read(model, "progress"));
  };
  return { node, update, tick };
}

/** Elapsed, ETA and pace, computed here so that they tick without the kernel. */
function timingText(p) {
  if (!isNum(p.started_at)) return "";
  const end = isNum(p.ended_at) ? p.ended_at : Date.now() / 1000;
  const elapsed = Math.max(0, end - p.started_at);
  const doneHere = (p.finished || 0) - (p.finished_before || 0);
  const remaining = Math.max(0, (p.target || 0) - ((p.finished || 0) - (p.retried || 0)));
  const eta = isNum(p.ended_at) ? 0 : doneHere > 0 ? (remaining * elapsed) / doneHere : null;
  const rate = elapsed > 1 && doneHere > 0 ? (60 * doneHere) / elapsed : p.per_minute;
  const pace = isNum(rate) ? rate.toFixed(1) : "—";
  return `elapsed ${fmtDuration(elapsed)} · ETA ${fmtDuration(eta)} · ${pace} trials/min`;
}

function showBest(node, p, study, top) {
  node.replaceChildren();
  if (asList(study.directions).length > 1) {
    node.append(
      h("span", { class: "hpo-label", text: `Pareto front: ${top.length} trial${top.length === 1 ? "" : "s"}` }),
    );
  } else if (p.best_value != null) {
    const value = h("b", { class: "hpo-best-value", text: fmtValue(p.best_value) });
    node.append(h("span", { class: "hpo-label", text: "best " }), value);
    if (p.best_number != null) node.append(h("span", { class: "hpo-label", text: ` trial ${p.best_number}` }));
    const params = Object.entries(asDict(p.best_params)).map(([k, v]) => h("code", { text: `${k}=${fmtValue(v)}` }));
    node.append(h("span", { class: "hpo-params" }, params));
  }
}
