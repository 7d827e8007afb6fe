// GENERATED FILE, do not edit: `npm run build` in widgets/ bundles widgets/src/ (entry
// src/index.js) into this file with esbuild. Edit the sources, then rebuild and commit both.

// src/dom.js
var SVG_NS = "http://www.w3.org/2000/svg";
var DOM_PROPS = /* @__PURE__ */ new Set(["value", "checked", "disabled", "hidden", "selected"]);
function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (DOM_PROPS.has(key)) node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((c) => c != null));
  return node;
}
function s(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) if (value != null) node.setAttribute(key, String(value));
  if (text != null) node.textContent = text;
  return node;
}
function label(x, y, text, anchor = "start", cls = null) {
  return s("text", { class: cls, x, y, "text-anchor": anchor }, text);
}
function titled(node, text) {
  node.append(s("title", {}, text));
  return node;
}
function debounced(fn, ms) {
  let timer = 0;
  const call = () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
  call.cancel = () => clearTimeout(timer);
  return call;
}

// src/format.js
var isNum = (v) => typeof v === "number" && Number.isFinite(v);
var clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
var asDict = (v) => v && typeof v === "object" && !Array.isArray(v) ? v : {};
var asList = (v) => Array.isArray(v) ? v : [];
function fmtNum(v, digits = 4) {
  if (!isNum(v)) return v == null ? "—" : String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e7) return String(v);
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(Math.max(0, digits - 2)).replace(/\.?0*e\+?/, "e");
  return String(+v.toPrecision(digits));
}
function fmtValue(v) {
  if (typeof v === "number") return fmtNum(v, 6);
  return typeof v === "string" ? v : JSON.stringify(v);
}
function fmtDuration(seconds) {
  if (!isNum(seconds)) return "—";
  const t = Math.max(0, Math.round(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  const [hh, mm, ss] = [Math.floor(t / 3600), Math.floor(t % 3600 / 60), t % 60];
  return hh > 0 ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
}
var fmtSeconds = (seconds) => seconds < 120 ? `${fmtNum(seconds, 2)} s` : fmtDuration(seconds);
function fmtBytes(bytes) {
  if (!isNum(bytes)) return "—";
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}
function fmtClock(epoch, withSeconds) {
  const d = new Date(epoch * 1e3);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${withSeconds ? `:${pad(d.getSeconds())}` : ""}`;
}
var short = (text, chars) => text.length > chars ? `${text.slice(0, Math.max(1, chars - 1))}…` : text;
function lowerBound(sorted, v) {
  let [lo, hi] = [0, sorted.length];
  while (lo < hi) {
    const mid = lo + hi >> 1;
    if (sorted[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// src/protocol.js
var TRAITS = Object.freeze({
  study: "dict",
  progress: "dict",
  config: "dict",
  options: "dict",
  space: "dict",
  draft_error: "text",
  config_error: "text",
  can: "dict",
  status: "text",
  top: "list",
  importance: "dict",
  exports: "list"
});
var COMMANDS = Object.freeze({
  SYNC: "sync",
  DRAFT: "draft",
  APPLY: "apply",
  CONFIG: "config",
  START: "start",
  STOP: "stop",
  STOP_NOW: "stop_now",
  RESUME: "resume",
  EXPORT: "export"
});
var MESSAGES = Object.freeze({
  TRIALS: "trials"
});
var MAX_ROWS = 6e3;

// src/state.js
var EVENT_HISTORY = 500;
var SERIES_LENGTH = 300;
function read(model, name) {
  const v = model.get(name);
  if (TRAITS[name] === "list") return asList(v);
  if (TRAITS[name] === "text") return v == null ? "" : String(v);
  return asDict(v);
}
function newStore() {
  return { rows: [], version: 0, syncing: false, events: [], seen: {}, series: /* @__PURE__ */ new Map(), memo: {} };
}
function receiveTrials(store, msg, model) {
  if (!msg || msg.kind !== MESSAGES.TRIALS || !Array.isArray(msg.rows)) return false;
  const rows = msg.rows.filter((r) => r && isNum(r.n)).map(cleanRow);
  if (msg.reset) [store.rows, store.syncing] = [rows, false];
  else store.rows.push(...rows);
  if (store.rows.length > MAX_ROWS && !store.syncing) {
    store.syncing = true;
    model.send({ cmd: COMMANDS.SYNC });
  }
  return true;
}
function cleanRow(row) {
  row.p = asDict(row.p);
  row.iv = asList(row.iv).filter((pt) => Array.isArray(pt) && isNum(pt[0]) && isNum(pt[1]));
  return row;
}
function objectiveOf(row, i = 0) {
  const v = row && Array.isArray(row.v) ? row.v[i] : null;
  return isNum(v) ? v : null;
}
var lastValue = (iv) => iv.length ? iv[iv.length - 1][1] : null;
function objectiveName(study, i) {
  const dirs = asList(study.directions);
  const names = String(study.objective || "").split(",").map((t) => t.trim()).filter(Boolean);
  if (dirs.length <= 1) return names[0] || "objective";
  return names.length === dirs.length ? names[i] : `objective ${i + 1}`;
}
function paramInfo(rows, space, importance) {
  const specs = asDict(space.params);
  const names = new Set(asList(importance.params).filter(Array.isArray).map((p) => String(p[0])));
  for (const name of Object.keys(specs)) names.add(name);
  for (const row of rows) for (const name of Object.keys(row.p)) names.add(name);
  const info = [];
  for (const name of names) {
    const spec = asDict(specs[name]);
    const values = rows.map((r) => r.p[name]).filter((v) => v !== void 0);
    if (!values.length) continue;
    const categorical = spec.type ? spec.type === "categorical" : values.some((v) => typeof v !== "number");
    if (!categorical) {
      const log = !!spec.log && values.every((v) => !isNum(v) || v > 0);
      info.push({ name, categorical, log, categories: null });
      continue;
    }
    const seen = new Map(asList(spec.choices).map((c) => [JSON.stringify(c), c]));
    for (const v of values) if (!seen.has(JSON.stringify(v))) seen.set(JSON.stringify(v), v);
    info.push({ name, categorical, log: false, categories: [...seen.values()] });
  }
  return info;
}
function takeEvents(history, seen, p) {
  const events = asList(p.events).filter((e) => typeof e === "string");
  const total = isNum(p.events_total) ? p.events_total : null;
  let fresh;
  if (total == null) fresh = events.slice(events.lastIndexOf(history[0]) + 1);
  else if (seen.total == null || total < seen.total) fresh = events;
  else fresh = events.slice(events.length - Math.min(events.length, total - seen.total));
  seen.total = total;
  if (!fresh.length) return false;
  history.unshift(...[...fresh].reverse());
  history.length = Math.min(history.length, EVENT_HISTORY);
  return true;
}
function sampleResources(series, p) {
  if (p.ended_at != null) return false;
  let changed = false;
  for (const r of asList(p.resources)) {
    if (!r || r.worker == null) continue;
    const key = JSON.stringify(r);
    if (!series.has(r.worker)) series.set(r.worker, { cpu: [], rss: [], gpu: [], gmem: [], last: "" });
    const sr = series.get(r.worker);
    if (sr.last === key) continue;
    [sr.last, sr.latest, changed] = [key, r, true];
    const push = (list, v) => list.push(isNum(v) ? v : null) > SERIES_LENGTH && list.shift();
    push(sr.cpu, r.cpu);
    push(sr.rss, r.rss);
    push(sr.gpu, r.gpu_utilization);
    push(sr.gmem, r.gpu_memory_used);
  }
  return changed;
}

// src/editor.js
var EDIT_DELAY_MS = 150;
var TYPES = ["float", "int", "categorical"];
function parseScalar(text) {
  const t = text.trim();
  if (t !== "" && Number.isFinite(Number(t))) return Number(t);
  try {
    const v = JSON.parse(t);
    if (v === null || ["boolean", "string"].includes(typeof v)) return v;
  } catch {
  }
  return t;
}
var parseList = (text, sep) => text.split(sep).map((t) => t.trim()).filter(Boolean).map(parseScalar);
function parseWhen(text) {
  const parts = text.split(";").map((t) => t.trim()).filter(Boolean);
  if (!parts.length) return void 0;
  if (parts.some((p) => !p.includes("="))) return text.trim();
  const condition = (p) => [p.slice(0, p.indexOf("=")).trim(), parseList(p.slice(p.indexOf("=") + 1), "|")];
  return Object.fromEntries(parts.map(condition));
}
var scalarText = (v) => typeof v === "string" && parseScalar(v) === v && !/[,|;]/.test(v) ? v : JSON.stringify(v);
function whenText(when) {
  return Object.entries(asDict(when)).map(([k, vs]) => `${k}=${[].concat(vs).map(scalarText).join("|")}`).join("; ");
}
var kindClass = (type) => `hpo-param hpo-${type === "categorical" ? "categorical" : "numeric"}`;
function paramRow(name, spec, editable) {
  const type = TYPES.includes(spec.type) ? spec.type : "float";
  const text = (field, value, placeholder, title) => {
    const props = { type: "text", "data-field": field, placeholder, title, spellcheck: "false" };
    return h("input", { ...props, value: value == null ? "" : String(value) });
  };
  const remove = h("button", { type: "button", class: "hpo-remove", "data-action": "remove", text: "×" });
  return h(
    "div",
    { class: kindClass(type), "data-param": name },
    editable ? text("name", name, "name") : h("span", { class: "hpo-param-name", title: name, text: name }),
    h("select", { "data-field": "type" }, TYPES.map((t) => h("option", { value: t, text: t, selected: t === type }))),
    text("low", spec.low, "low"),
    text("high", spec.high, "high"),
    text("step", spec.step, "step"),
    h(
      "label",
      { class: "hpo-log", title: "sample on a log scale" },
      h("input", { type: "checkbox", "data-field": "log", checked: !!spec.log }),
      "log"
    ),
    text(
      "choices",
      asList(spec.choices).map(scalarText).join(", "),
      "choices: a, b, 3",
      "comma separated; numbers, true, false and null read as in JSON"
    ),
    text(
      "when",
      whenText(spec.when),
      "when: param=v1|v2",
      "only sampled when earlier parameters take these values; several: a=x; b=1|2"
    ),
    editable ? remove : h("span")
  );
}
function readSpec(row) {
  const field = (name) => row.querySelector(`[data-field="${name}"]`);
  const spec = { type: field("type").value };
  if (spec.type === "categorical") spec.choices = parseList(field("choices").value, ",");
  else {
    for (const key of ["low", "high", "step"]) if (field(key).value.trim()) spec[key] = parseScalar(field(key).value);
    spec.log = field("log").checked;
  }
  const when = parseWhen(field("when").value);
  if (when !== void 0) spec.when = when;
  return spec;
}
var SOURCE_TEXT = {
  declared: "declared space",
  discovered: "discovered from finished trials: narrow a range, fix a value or change choices for later trials",
  none: "no space yet: add parameters"
};
function buildSpaceEditor(model) {
  const source = h("div", { class: "hpo-space-source" });
  const list = h("div", { class: "hpo-param-list" });
  const error = h("div", { class: "hpo-space-error", role: "alert" });
  const button = (cls, text, title, extra = {}) => h("button", { type: "button", class: cls, text, title, ...extra });
  const add = button("hpo-add", "+ parameter", "add a parameter");
  const reset = button("hpo-reset", "Discard edits", "reload the space the next trials use");
  const apply = button("hpo-primary", "Apply", "use this space for later trials", { "data-cmd": COMMANDS.APPLY });
  const labels = h(
    "div",
    { class: "hpo-param hpo-param-head" },
    ["name", "type", "low", "high", "step", "log", "when", ""].map((t) => h("span", { text: t }))
  );
  const node = h(
    "div",
    { class: "hpo-space" },
    h(
      "div",
      { class: "hpo-section-head" },
      h("b", { text: "Search space" }),
      source,
      h("span", { class: "hpo-grow" }),
      add,
      reset,
      apply
    ),
    labels,
    list,
    error
  );
  let dirty = false;
  let stale = false;
  let localError = "";
  const editable = () => ["declared", "none", void 0].includes(read(model, "space").source);
  function readSpace() {
    const params = {};
    const names = [...list.children].map((row) => row.dataset.param);
    for (const row of list.children) params[row.dataset.param] = readSpec(row);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    localError = twice != null ? `search space: parameter '${twice}' is listed twice; rename one` : "";
    return params;
  }
  const sendDraft = debounced(() => {
    model.send({ cmd: COMMANDS.DRAFT, space: { params: readSpace() } });
    showState();
  }, EDIT_DELAY_MS);
  const edited = () => {
    dirty = true;
    sendDraft();
  };
  function rebuild() {
    const canEdit = editable();
    const params = Object.entries(asDict(read(model, "space").params));
    list.replaceChildren(...params.map(([name, spec]) => paramRow(name, asDict(spec), canEdit)));
    [stale, localError] = [false, ""];
  }
  function showState() {
    const message = localError || read(model, "draft_error");
    error.textContent = message;
    error.title = message;
    apply.disabled = !read(model, "can").apply || !!message || !list.children.length;
    reset.disabled = !dirty;
    labels.hidden = !list.children.length;
    add.hidden = !editable();
    source.textContent = SOURCE_TEXT[read(model, "space").source] || SOURCE_TEXT.none;
  }
  list.addEventListener("input", (e) => {
    const row = e.target.closest(".hpo-param");
    if (e.target.dataset.field === "name") row.dataset.param = e.target.value.trim();
    if (e.target.dataset.field === "type") row.className = kindClass(e.target.value);
    edited();
  });
  list.addEventListener("click", (e) => {
    if (e.target.dataset.action !== "remove") return;
    e.target.closest(".hpo-param").remove();
    edited();
  });
  list.addEventListener("focusout", () => setTimeout(() => {
    if (stale && !dirty && !list.contains(document.activeElement)) rebuild();
  }));
  add.addEventListener("click", () => {
    const taken = new Set([...list.children].map((r) => r.dataset.param));
    let i = list.children.length + 1;
    while (taken.has(`param${i}`)) i++;
    list.append(paramRow(`param${i}`, { type: "float", low: 0, high: 1 }, true));
    edited();
  });
  reset.addEventListener("click", () => {
    dirty = false;
    rebuild();
    sendDraft();
  });
  apply.addEventListener("click", () => {
    sendDraft.cancel();
    model.send({ cmd: COMMANDS.APPLY, space: { params: readSpace() } });
    dirty = false;
  });
  function update(changed) {
    if (changed.has("space") || changed.has("init")) {
      if (!dirty && !list.contains(document.activeElement)) rebuild();
      else stale = true;
    }
    showState();
  }
  return { node, update, cancel: sendDraft.cancel };
}
function buildConfigEditor(model) {
  const send = (config) => model.send({ cmd: COMMANDS.CONFIG, config });
  const pickers = ["sampler", "pruner"].map((kind) => {
    const select = h("select", { "data-config": kind });
    const box = h("div", { class: "hpo-options", "data-for": kind });
    select.addEventListener("change", () => send({ [kind]: select.value, [`${kind}_options`]: {} }));
    const sendOptions = debounced(() => send({ [`${kind}_options`]: readOptions(box) }), EDIT_DELAY_MS);
    box.addEventListener("input", sendOptions);
    return { kind, select, box, cancel: sendOptions.cancel };
  });
  const settings = h("div", { class: "hpo-numbers" });
  let [fields, shape] = [[], ""];
  const error = h("div", { class: "hpo-config-error", role: "alert" });
  const node = h(
    "div",
    { class: "hpo-config" },
    h("div", { class: "hpo-section-head" }, h("b", { text: "Run settings" })),
    pickers.map((p) => h("div", { class: "hpo-picker" }, h("label", {}, h("span", { text: p.kind }), p.select), p.box)),
    settings,
    error
  );
  function update() {
    const [options, config] = [read(model, "options"), read(model, "config")];
    for (const p of pickers) {
      const names = asList(options[`${p.kind}s`]).map(String);
      if (p.select.dataset.names !== names.join("\n")) {
        p.select.replaceChildren(...names.map((n) => h("option", { value: n, text: n })));
        p.select.dataset.names = names.join("\n");
      }
      if (document.activeElement !== p.select && config[p.kind] != null) p.select.value = config[p.kind];
      const defaults = asDict(asDict(options[`${p.kind}_options`])[p.select.value]);
      fillOptions(p.box, p.select.value, defaults, asDict(config[`${p.kind}_options`]));
    }
    const specs = asList(options.fields).filter((f) => f && typeof f.name === "string");
    if (JSON.stringify(specs) !== shape && !settings.contains(document.activeElement)) {
      fields.forEach((f) => f.cancel());
      fields = specs.map((spec) => settingInput(spec, send));
      settings.replaceChildren(...fields.map((f) => f.node));
      shape = JSON.stringify(specs);
    }
    for (const f of fields) {
      if (document.activeElement !== f.input) f.input.value = config[f.name] == null ? "" : String(config[f.name]);
    }
    error.textContent = read(model, "config_error");
  }
  return { node, update, cancel: () => [...pickers, ...fields].forEach((x) => x.cancel()) };
}
var NUMBER_STEPS = { int: "1", float: "any" };
function settingInput(spec, send) {
  const numeric = Object.hasOwn(NUMBER_STEPS, spec.kind);
  const input = h("input", {
    type: numeric ? "number" : "text",
    "data-config": spec.name,
    step: NUMBER_STEPS[spec.kind],
    min: numeric ? spec.min : null,
    placeholder: spec.nullable ? "none" : null
  });
  const value = () => input.value.trim() === "" ? null : numeric ? Number(input.value) : input.value;
  const sendValue = debounced(() => send({ [spec.name]: value() }), EDIT_DELAY_MS);
  input.addEventListener("input", sendValue);
  const node = h("label", { title: spec.help || null }, h("span", { text: spec.label || spec.name }), input);
  return { name: spec.name, input, node, cancel: sendValue.cancel };
}
function fillOptions(box, name, defaults, values) {
  const key = `${name}:${Object.keys(defaults).join(",")}`;
  if (box.dataset.key !== key && !box.contains(document.activeElement)) {
    box.replaceChildren(...Object.entries(defaults).map(([option, fallback]) => h(
      "label",
      {},
      h("span", { text: option }),
      h("input", {
        type: "text",
        "data-option": option,
        placeholder: fallback == null ? "auto" : scalarText(fallback)
      })
    )));
    box.dataset.key = key;
  }
  for (const input of box.querySelectorAll("input[data-option]")) {
    const v = values[input.dataset.option];
    if (document.activeElement !== input) input.value = v === void 0 ? "" : scalarText(v);
  }
}
function readOptions(box) {
  const filled = [...box.querySelectorAll("input[data-option]")].filter((input) => input.value.trim());
  return Object.fromEntries(filled.map((input) => [input.dataset.option, parseScalar(input.value)]));
}

// src/header.js
var COUNT_KINDS = ["complete", "pruned", "failed", "running"];
var BUTTONS = [
  [COMMANDS.START, "Start", "run trials until the target"],
  [COMMANDS.STOP, "Stop", "let running trials finish, then stop"],
  [COMMANDS.STOP_NOW, "Stop now", "cancel running trials now (they count as failed)"],
  [COMMANDS.RESUME, "Resume", "continue the stopped run"],
  [COMMANDS.EXPORT, "Export", "write every chart as PNG, SVG and HTML"]
];
function buildHeader(model, root) {
  const spans = ["hpo-study", "hpo-state", "hpo-reason", "hpo-origin"].map((c) => h("span", { class: c }));
  const [name, badge, reason, origin] = spans;
  const fill = h("div", { class: "hpo-bar-fill" });
  const bar = h("div", { class: "hpo-bar" }, fill);
  const fraction = h("span", { class: "hpo-fraction" });
  const counts = COUNT_KINDS.map((kind) => h("span", { class: `hpo-count hpo-${kind}`, "data-kind": kind }, h("b"), ` ${kind}`));
  const timing = h("span", { class: "hpo-timing" });
  const [best, sampler, failure] = ["hpo-best", "hpo-sampler", "hpo-failure"].map((c) => h("div", { class: c }));
  const buttons = BUTTONS.map(([cmd, label2, title]) => h("button", {
    type: "button",
    class: `hpo-btn hpo-btn-${cmd}`,
    "data-cmd": cmd,
    text: label2,
    title,
    disabled: true,
    onclick: () => model.send({ cmd })
  }));
  const status = h("div", { class: "hpo-status" });
  const exports = h("div", { class: "hpo-exports" });
  const node = h(
    "div",
    { class: "hpo-head" },
    h("div", { class: "hpo-title" }, name, badge, reason, h("span", { class: "hpo-grow" }), origin),
    bar,
    h("div", { class: "hpo-stats" }, fraction, counts, h("span", { class: "hpo-grow" }), timing),
    best,
    sampler,
    failure,
    h("div", { class: "hpo-actions" }, buttons, status),
    exports
  );
  function update() {
    const [p, study, can, config] = ["progress", "study", "can", "config"].map((t) => read(model, t));
    const state = p.state || "idle";
    Object.assign(root.dataset, { state, finished: String(p.finished ?? 0), study: study.name || p.study || "" });
    name.textContent = study.name || p.study || "study";
    name.title = study.storage || "";
    badge.className = `hpo-state hpo-state-${state}`;
    badge.textContent = state;
    reason.textContent = p.reason || p.note || "";
    const goals = asList(study.directions).map((d, i) => study.objective ? `${d} ${objectiveName(study, i)}` : d);
    const parent = study.parent ? `branched from ${study.parent}` : "";
    origin.textContent = [goals.join(", "), parent].filter(Boolean).join(" · ");
    const target = p.target || config.n_trials || 0;
    fill.style.width = `${target > 0 ? Math.min(100, 100 * (p.finished || 0) / target) : 0}%`;
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
function timingText(p) {
  if (!isNum(p.started_at)) return "";
  const end = isNum(p.ended_at) ? p.ended_at : Date.now() / 1e3;
  const elapsed = Math.max(0, end - p.started_at);
  const doneHere = (p.finished || 0) - (p.finished_before || 0);
  const remaining = Math.max(0, (p.target || 0) - ((p.finished || 0) - (p.retried || 0)));
  const eta = isNum(p.ended_at) ? 0 : doneHere > 0 ? remaining * elapsed / doneHere : null;
  const rate = elapsed > 1 && doneHere > 0 ? 60 * doneHere / elapsed : p.per_minute;
  const pace = isNum(rate) ? rate.toFixed(1) : "—";
  return `elapsed ${fmtDuration(elapsed)} · ETA ${fmtDuration(eta)} · ${pace} trials/min`;
}
function showBest(node, p, study, top) {
  node.replaceChildren();
  if (asList(study.directions).length > 1) {
    node.append(
      h("span", { class: "hpo-label", text: `Pareto front: ${top.length} trial${top.length === 1 ? "" : "s"}` })
    );
  } else if (p.best_value != null) {
    const value = h("b", { class: "hpo-best-value", text: fmtValue(p.best_value) });
    node.append(h("span", { class: "hpo-label", text: "best " }), value);
    if (p.best_number != null) node.append(h("span", { class: "hpo-label", text: ` trial ${p.best_number}` }));
    const params = Object.entries(asDict(p.best_params)).map(([k, v]) => h("code", { text: `${k}=${fmtValue(v)}` }));
    node.append(h("span", { class: "hpo-params" }, params));
  }
}

// src/plot.js
var CHART_HEIGHT = 300;
var MARGIN = { l: 68, r: 18, t: 14, b: 42 };
var LEVELS = 8;
var DETAIL_LIMIT = 1500;
function qualityScale(values, direction) {
  const sorted = values.filter(isNum).sort((a, b) => a - b);
  return (v) => {
    if (!isNum(v) || sorted.length < 2) return 1;
    const q = Math.min(1, lowerBound(sorted, v) / (sorted.length - 1));
    return direction === "maximize" ? q : 1 - q;
  };
}
var level = (t) => clamp(Math.floor(t * LEVELS), 0, LEVELS - 1);
var ramp = (t) => `var(--hpo-q${level(t)})`;
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
function logTicks(lo, hi, count) {
  const [a, b] = [Math.floor(Math.log10(lo)), Math.ceil(Math.log10(hi))];
  const within = (mantissas) => {
    const ticks2 = [];
    for (let e = a; e <= b; e++) for (const m of mantissas) ticks2.push(+(m * 10 ** e).toPrecision(12));
    return ticks2.filter((v) => v >= lo && v <= hi);
  };
  let ticks = within([1]);
  for (const mantissas of [[1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) if (ticks.length < 3) ticks = within(mantissas);
  const every = Math.ceil(ticks.length / count);
  return ticks.filter((_, i) => i % every === 0);
}
var TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
function timeTicks(lo, hi, count) {
  const step = TIME_STEPS.find((t) => (hi - lo) / t <= count) || 86400 * Math.ceil((hi - lo) / count / 86400);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push(t);
  return ticks;
}
function linearScale([d0, d1], [r0, r1]) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return {
    kind: "linear",
    map: (v) => isNum(v) ? r0 + (v - d0) * k : null,
    ticks: (n = 5) => niceTicks(d0, d1, n),
    format: (t) => fmtNum(t)
  };
}
function logScale([d0, d1], range) {
  const inner = linearScale([Math.log10(d0), Math.log10(d1)], range);
  const map = (v) => isNum(v) && v > 0 ? inner.map(Math.log10(v)) : null;
  return { ...inner, kind: "log", map, ticks: (n = 5) => logTicks(d0, d1, n) };
}
function bandScale(categories, [r0, r1]) {
  const index = new Map(categories.map((c, i) => [JSON.stringify(c), i]));
  const step = (r1 - r0) / Math.max(1, categories.length);
  const map = (v) => index.has(JSON.stringify(v)) ? r0 + step * (index.get(JSON.stringify(v)) + 0.5) : null;
  return { kind: "band", step, map, ticks: () => categories, format: fmtValue };
}
function extent(values, positiveOnly = false) {
  let [lo, hi] = [Infinity, -Infinity];
  for (const v of values) {
    if (!isNum(v) || positiveOnly && v <= 0) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return lo <= hi ? [lo, hi] : null;
}
function makeScale(values, range, { log = false, categories = null, pad = 0.04, integer = false } = {}) {
  if (categories) return bandScale(categories, range);
  const positive = log ? extent(values, true) : null;
  if (positive) {
    let [lo2, hi2] = positive.map(Math.log10);
    if (hi2 - lo2 < 1e-9) [lo2, hi2] = [lo2 - 0.5, hi2 + 0.5];
    const p2 = (hi2 - lo2) * pad;
    return logScale([10 ** (lo2 - p2), 10 ** (hi2 + p2)], range);
  }
  let [lo, hi] = extent(values) || [0, 1];
  const flat = hi - lo < 1e-12 * Math.max(1, Math.abs(lo));
  if (flat) [lo, hi] = [lo - (Math.abs(lo) * 0.1 || 1), hi + (Math.abs(hi) * 0.1 || 1)];
  const p = (hi - lo) * pad;
  const scale = linearScale([lo - p, hi + p], range);
  if (integer) scale.ticks = (n = 5) => niceTicks(lo - p, hi + p, n).filter(Number.isInteger);
  return scale;
}
function tickValues(scale, count, length, labelSize) {
  if (scale.kind !== "band") return scale.ticks(count);
  const all = scale.ticks();
  const every = Math.ceil(all.length / Math.max(1, Math.floor(length / labelSize)));
  return all.filter((_, i) => i % every === 0);
}
function newChart(view, width, height, margin = MARGIN) {
  const svg = s("svg", {
    class: "hpo-chart",
    "data-chart": view,
    "data-points": 0,
    width: "100%",
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "xMidYMid meet"
  });
  const box = { left: margin.l, right: width - margin.r, top: margin.t, bottom: height - margin.b };
  const empty = (message) => {
    svg.append(label(width / 2, height / 2, message, "middle", "hpo-empty-text"));
    return { node: svg, caption: "" };
  };
  return { svg, box, width, height, empty };
}
function finish(chart, points, caption = "") {
  chart.svg.setAttribute("data-points", String(points));
  return { node: chart.svg, caption };
}
function drawXAxis(g, scale, box, title) {
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
function drawAxes(svg, box, xs, ys, xLabel, yLabel, labelX = 14) {
  const g = s("g", { class: "hpo-axis" });
  drawYAxis(g, ys, box, yLabel, labelX);
  drawXAxis(g, xs, box, xLabel);
  svg.append(g);
}
function dot(x, y, r, cls, title, fill) {
  const style = fill ? `fill: ${fill}` : null;
  return titled(s("circle", { class: cls, cx: x.toFixed(1), cy: y.toFixed(1), r, style }), title);
}
function dots(marks, r, cls, fill = null, fast = marks.length > DETAIL_LIMIT) {
  if (fast) {
    const arc = `a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0`;
    const d = marks.map(([x, y]) => `M${(x - r).toFixed(1)},${y.toFixed(1)}${arc}`).join("");
    return s("path", { class: cls, d, style: fill && `fill: ${fill}` });
  }
  const g = s("g");
  for (const [x, y, title] of marks) g.append(dot(x, y, r, cls, title, fill));
  return g;
}
function cross(x, y, size, cls, title) {
  const d = `M${x - size},${y - size}L${x + size},${y + size}M${x - size},${y + size}L${x + size},${y - size}`;
  return titled(s("path", { class: cls, d }), title);
}
var pointList = (pts) => pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
function rampLegend(svg, right, y) {
  const x = right - LEVELS * 10 - 40;
  const g = s("g", { class: "hpo-legend" });
  g.append(label(x - 4, y + 8, "worse", "end"));
  for (let i = 0; i < LEVELS; i++) {
    g.append(s("rect", { x: x + i * 10, y, width: 10, height: 9, style: `fill: var(--hpo-q${i})` }));
  }
  g.append(label(x + LEVELS * 10 + 4, y + 8, "better"));
  svg.append(g);
}
var wantLog = (opts, values) => !!opts.logY && values.some(isNum) && values.every((v) => !isNum(v) || v > 0);

// src/charts.js
function drawConvergence(ctx, opts) {
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
    dots(complete.map(scored), 3, "hpo-dot")
  );
  const caption = `${complete.length} complete · ${pruned.length} pruned (grey) · ${failed.length} failed (×)` + (opts.logY && !log ? " · log scale needs positive values" : "");
  return finish(c, complete.length + pruned.length + failed.length, caption);
}
function bestSoFar(rows, value, direction) {
  const steps = [];
  let best = null;
  for (const r of rows) {
    const v = value(r);
    if (best == null || (direction === "maximize" ? v > best : v < best)) steps.push([r.n, best = v]);
  }
  return steps;
}
function stepPath(points, xs, ys, xEnd) {
  let d = `M${xs.map(points[0][0])},${ys.map(points[0][1])}`;
  for (const [n, v] of points.slice(1)) d += `H${xs.map(n)}V${ys.map(v)}`;
  return `${d}H${xEnd}`;
}
function drawIntermediate(ctx, opts) {
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
  const rank = (r) => r.s === "complete" ? 1 + quality(ctx.value(r)) : 0;
  const [lines, marks] = [s("g", { class: "hpo-curves" }), s("g")];
  for (const r of [...shown].sort((a, b) => rank(a) - rank(b))) curve(r, xs, ys, quality, lines, marks);
  svg.append(lines, marks);
  const caption = `latest ${shown.length} of ${withCurves.length} trials with intermediate values; grey = pruned (× where it stopped) or failed`;
  return finish(c, shown.length, caption);
}
function curve(row, xs, ys, quality, lines, marks) {
  const pts = row.iv.map(([step, v]) => [xs.map(step), ys.map(v)]).filter(([x2, y2]) => x2 != null && y2 != null);
  if (!pts.length) return;
  const done = row.s === "complete";
  const label2 = `trial ${row.n}: ${row.s}` + (done ? ` ${fmtNum(objectiveOf(row), 6)}` : "");
  const attrs = {
    class: done ? "hpo-curve" : `hpo-curve hpo-curve-${row.s}`,
    style: done ? `stroke: ${ramp(quality(objectiveOf(row)))}` : null,
    points: pointList(pts)
  };
  lines.append(pts.length > 1 ? titled(s("polyline", attrs), label2) : dot(...pts[0], 1.5, "hpo-dot-small", label2));
  if (row.s !== "pruned") return;
  const at = row.iv.findIndex(([step]) => step === row.ps);
  const [x, y] = pts[at >= 0 && at < pts.length ? at : pts.length - 1];
  marks.append(cross(x, y, 3, "hpo-mark-pruned", `trial ${row.n}: pruned at step ${row.ps ?? "?"}`));
}
function drawParallel(ctx) {
  const c = newChart("parallel", ctx.width, CHART_HEIGHT + 40, { l: 56, r: 60, t: 44, b: 24 });
  const complete = ctx.complete();
  const params = ctx.params().slice(0, 8);
  if (!complete.length || !params.length) return c.empty("no complete trials yet");
  const { box, svg } = c;
  const range = [box.bottom, box.top];
  const spacing = (box.right - box.left) / params.length;
  const axes = params.map((p, i) => ({
    label: p.name,
    x: box.left + i * spacing,
    value: (r) => r.p[p.name],
    scale: makeScale(complete.map((r) => r.p[p.name]), range, { log: p.log, categories: p.categories })
  }));
  const objective = makeScale(complete.map(ctx.value), range);
  axes.push({ label: ctx.objName(0), x: box.right, value: ctx.value, scale: objective });
  const quality = qualityScale(complete.map(ctx.value), ctx.direction);
  const lines = [...complete].sort((a, b) => quality(ctx.value(a)) - quality(ctx.value(b)));
  const g = s("g", { class: "hpo-lines" });
  const stroke = (t, colour) => `stroke: ${colour}; stroke-opacity: ${(0.35 + 0.6 * t).toFixed(2)}`;
  if (lines.length > DETAIL_LIMIT) {
    const byLevel = Array.from({ length: LEVELS }, () => []);
    for (const r of lines) byLevel[level(quality(ctx.value(r)))].push(polyPath(axes, r));
    byLevel.forEach((paths, k) => paths.length && g.append(
      s("path", { d: paths.join(""), style: stroke((k + 0.5) / LEVELS, `var(--hpo-q${k})`) })
    ));
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
function drawSlice(ctx, opts) {
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
    const [x0, y0] = [i % cols * panelW, Math.floor(i / cols) * panelH];
    const box = { left: x0 + 60, right: x0 + panelW - 12, top: y0 + 10, bottom: y0 + panelH - 40 };
    const rows = complete.filter((r) => r.p[p.name] !== void 0);
    const xs = makeScale(rows.map((r) => r.p[p.name]), [box.left, box.right], { log: p.log, categories: p.categories });
    const ys = makeScale(values, [box.bottom, box.top], { log });
    drawAxes(c.svg, box, xs, ys, p.name + (p.log ? " (log)" : ""), i % cols ? "" : ctx.objName(0), x0 + 14);
    const byAge = Array.from({ length: LEVELS }, () => []);
    for (const r of rows) {
      const jitter = xs.kind === "band" ? (r.n * 2654435761 % 1e3 / 1e3 - 0.5) * xs.step * 0.5 : 0;
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
function drawContour(ctx) {
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
function binEdges(positions, lo, hi, n) {
  const distinct = [...new Set(positions.map((p) => Math.round(p)))].sort((a, b) => a - b);
  if (distinct.length <= n) return [lo, ...distinct.slice(1).map((p, i) => (p + distinct[i]) / 2), hi];
  return Array.from({ length: n + 1 }, (_, i) => lo + (hi - lo) * i / n);
}
function binCells(rows, position, value, xEdges, yEdges) {
  const index = (edges, p) => clamp(lowerBound(edges, p) - 1, 0, edges.length - 2);
  const cells = /* @__PURE__ */ new Map();
  for (const r of rows) {
    const [x, y] = position(r);
    if (x == null || y == null) continue;
    const [i, j] = [index(xEdges, x), index(yEdges, y)];
    const key = i * yEdges.length + j;
    if (!cells.has(key)) {
      const [w, h2] = [xEdges[i + 1] - xEdges[i], yEdges[j + 1] - yEdges[j]];
      cells.set(key, { x: xEdges[i], y: yEdges[j], w, h: h2, sum: 0, count: 0 });
    }
    const cell = cells.get(key);
    cell.sum += value(r);
    cell.count += 1;
  }
  return [...cells.values()].map((cell) => ({ ...cell, mean: cell.sum / cell.count }));
}
function drawPareto(ctx) {
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
    ...dirs.length === 2 ? [s("polyline", { class: "hpo-front-line", points: staircase })] : [],
    // a line in 2-D only
    dots(front.map(mark), 4, "hpo-dot-front")
  );
  const more = dirs.length > 2 ? `; first 2 of ${dirs.length} objectives` : "";
  return finish(c, count, `${front.length} non-dominated (orange) of ${count} complete trials${more}`);
}
function drawImportance(ctx) {
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
function drawTimeline(ctx) {
  const { progress } = ctx;
  const timed = ctx.rows.filter((r) => isNum(r.t0) && isNum(r.t1) && r.w != null);
  const rows = timed.sort((a, b) => a.t1 - b.t1).slice(-600);
  const running = progress.ended_at == null ? asList(progress.resources).filter((r) => r && r.trial != null) : [];
  const workers = [.../* @__PURE__ */ new Set([...rows.map((r) => String(r.w)), ...running.map((r) => String(r.worker))])].sort();
  const laneH = workers.length > 12 ? 14 : 26;
  const height = Math.max(120, workers.length * laneH + 60);
  const c = newChart("resources", ctx.width, height, { l: 130, r: 16, t: 8, b: 36 });
  if (!workers.length) return c.empty("no trial has run on a worker yet");
  const { box, svg } = c;
  const now = Date.now() / 1e3;
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
var shortWorker = (name) => name.replace(/^[a-z]+:\/\//, "");

// src/tables.js
function drawTop(ctx, state) {
  const rows = ctx.top.filter((r) => r && typeof r === "object");
  const objectives = Math.max(ctx.dirs.length, ...rows.map((r) => asList(r.v).length));
  const params = [...new Set(rows.flatMap((r) => Object.keys(asDict(r.p))))];
  const reserved = (name) => ["number", "duration"].includes(name) || name.startsWith("value");
  const columns = [
    { key: "number", label: "trial", get: (r) => r.n, show: String },
    ...Array.from({ length: objectives }, (_, i) => ({
      key: objectives > 1 ? `value${i}` : "value",
      label: ctx.objName(i),
      get: (r) => objectiveOf(r, i),
      show: fmtValue
    })),
    { key: "duration", label: "time", get: (r) => isNum(r.t1) && isNum(r.t0) ? r.t1 - r.t0 : null, show: fmtSeconds },
    ...params.map((name) => ({ key: reserved(name) ? `p.${name}` : name, label: name, get: (r) => asDict(r.p)[name] }))
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
    "data-sort": col.key,
    title: "sort",
    onclick: () => sortBy(col.key),
    "aria-sort": col === column ? state.desc ? "descending" : "ascending" : null
  }, col.label, col === column ? state.desc ? " ▾" : " ▴" : ""));
  const cell = (col, r) => {
    const v = col.get(r);
    const show = col.show || fmtValue;
    const text = v === void 0 ? "" : v === null && col.show ? "—" : show(v);
    return h("td", { class: typeof v === "number" ? "hpo-num" : null, text });
  };
  const best = ctx.dirs.length === 1 ? rows[0] : null;
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
  return String(a).localeCompare(String(b), void 0, { numeric: true });
}
var EVENT_TONES = [[/fail|error|lost|killed/i, "bad"], [/prune/i, "warn"], [/best/i, "good"]];
function drawEvents(ctx) {
  const feed = h("div", { class: "hpo-feed" });
  for (const text of ctx.events) {
    const [, time, rest] = /^(\d\d:\d\d:\d\d)\s+(.*)$/s.exec(text) || [null, "", text];
    const tone = EVENT_TONES.find(([re]) => re.test(rest));
    feed.append(h(
      "div",
      { class: `hpo-event${tone ? ` hpo-event-${tone[1]}` : ""}` },
      h("span", { class: "hpo-event-time", text: time }),
      h("span", { text: rest })
    ));
  }
  if (!ctx.events.length) feed.append(h("div", { class: "hpo-empty", text: "no events yet" }));
  return { node: feed, caption: `${ctx.events.length} events, newest first (the last ${EVENT_HISTORY} are kept)` };
}
function drawResources(ctx) {
  const timeline = drawTimeline(ctx);
  return { node: [timeline.node, workerTable(ctx.series)], caption: timeline.caption };
}
function workerTable(series) {
  const head = ["worker", "trial", "CPU", "RSS", "GPU", "GPU memory"].map((t) => h("th", { text: t }));
  const percent = (v) => isNum(v) ? `${Math.round(v)}%` : "—";
  const rows = [...series.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, sr]) => {
    const last = sr.latest || {};
    const total = last.gpu_memory_total;
    const memory = isNum(last.gpu_memory_used) ? `${fmtBytes(last.gpu_memory_used)} / ${fmtBytes(total)}` : "—";
    return h(
      "tr",
      {},
      h("td", { class: "hpo-worker-name", title: name, text: short(shortWorker(name), 22) }),
      h("td", { class: "hpo-num", text: last.trial != null ? String(last.trial) : "idle" }),
      sparkCell(sr.cpu, 100, percent(last.cpu)),
      sparkCell(sr.rss, null, fmtBytes(last.rss)),
      sparkCell(sr.gpu, 100, percent(last.gpu_utilization), last.gpu),
      sparkCell(sr.gmem, total || null, memory)
    );
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
function sparkline(values, max, width = 110, height = 22) {
  const step = width / (Math.max(values.length, 30) - 1);
  const offset = width - (values.length - 1) * step;
  const top = max > 0 ? max : 1;
  const y = (v) => height - 1 - clamp(v / top, 0, 1) * (height - 2);
  const pts = values.map((v, i) => isNum(v) ? [offset + i * step, y(v)] : null).filter(Boolean);
  const svg = s("svg", { class: "hpo-spark", viewBox: `0 0 ${width} ${height}`, width, height });
  svg.append(s("rect", { class: "hpo-spark-bg", width, height }), s("polyline", { points: pointList(pts) }));
  return svg;
}

// src/views.js
var ROW_DEPS = ["rows", "study", "space", "importance"];
var VIEWS = [
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
  { name: "events", label: "Events", deps: ["events"], draw: drawEvents }
];
function buildView(spec, schedule) {
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
function viewContext(model, store, width, redraw) {
  const study = read(model, "study");
  const dirs = asList(study.directions).length ? study.directions : ["minimize"];
  const memo = (key, make) => {
    if (store.memo.version !== store.version) store.memo = { version: store.version };
    if (!(key in store.memo)) store.memo[key] = make();
    return store.memo[key];
  };
  const byNumber = () => store.rows.filter((r) => r.s === "complete" && objectiveOf(r) != null).sort((a, b) => a.n - b.n);
  return {
    rows: store.rows,
    study,
    dirs,
    direction: dirs[0],
    width,
    value: (r) => objectiveOf(r, 0),
    objName: (i) => objectiveName(study, i),
    complete: () => memo("complete", byNumber),
    params: () => memo("params", () => paramInfo(store.rows, read(model, "space"), read(model, "importance"))),
    importance: read(model, "importance"),
    top: read(model, "top"),
    progress: read(model, "progress"),
    events: store.events,
    series: store.series,
    redraw
  };
}
function drawView(view, ctx) {
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

// src/index.js
var REDRAW_COST = 6;
var HEADER_DEPS = ["progress", "study", "can", "status", "exports", "config", "top", "init"];
var SETUP_DEPS = ["space", "draft_error", "can", "config", "options", "config_error", "init"];
var ACTIVE_STATES = ["starting", "running", "stopping"];
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
  const dirty = /* @__PURE__ */ new Set(["init"]);
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
    type: "button",
    class: "hpo-tab",
    role: "tab",
    "data-tab": spec.name,
    text: spec.label,
    hidden: spec.multi,
    onclick: () => {
      chosen = true;
      show(spec.name);
    }
  }));
  const viewArea = h("div", { class: "hpo-views" }, [...views.values()].map((v) => v.node));
  root.replaceChildren(header.node, h("div", { class: "hpo-tabs", role: "tablist" }, tabs), viewArea);
  function show(name) {
    current = name;
    for (const tab of tabs) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    for (const [key, view] of views) view.node.hidden = key !== name;
    schedule("view");
  }
  function defaultView() {
    const p = read(model, "progress");
    return data.rows.length || p.finished > 0 || ACTIVE_STATES.includes(p.state) ? "convergence" : "setup";
  }
  function redraw(view) {
    lastWidth = viewArea.clientWidth;
    const width = clamp(Math.floor(lastWidth || 760), 320, 1800);
    drawView(view, viewContext(model, data, width, () => schedule("view")));
  }
  function refresh(view, changed) {
    if (!view.spec.draw) return;
    if (view.spec.deps.some((d) => changed.has(d))) view.stale = true;
    const wait = view.drawnAt + REDRAW_COST * view.cost - performance.now();
    if (changed.has("view") || changed.has("size") || view.stale && wait <= 0) redraw(view);
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
    ["msg:custom", onMessage]
  ];
  for (const [event, fn] of handlers) model.on(event, fn);
  const resize = new ResizeObserver(() => {
    if (Math.abs(viewArea.clientWidth - lastWidth) > 8) schedule("size");
  });
  resize.observe(viewArea);
  const ticker = setInterval(header.tick, 1e3);
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
var index_default = { render };
export {
  index_default as default
};
