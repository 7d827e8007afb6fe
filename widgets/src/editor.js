// The setup view's editors: the search space (drafts the kernel validates, Apply) and the run
// settings (sampler, pruner and the fields the kernel lists in `options.fields`).

import { debounced, h } from "./dom.js";
import { asDict, asList } from "./format.js";
import { COMMANDS } from "./protocol.js";
import { read } from "./state.js";

const EDIT_DELAY_MS = 150;

// ---------------------------------------------------------------- the search-space editor

const TYPES = ["float", "int", "categorical"];

/** One typed value, read like JSON where it can be (numbers, true/false/null, "quoted"), else a string. */
function parseScalar(text) {
  const t = text.trim();
  if (t !== "" && Number.isFinite(Number(t))) return Number(t);
  try {
    const v = JSON.parse(t);
    if (v === null || ["boolean", "string"].includes(typeof v)) return v;
  } catch {
    // not JSON: a plain string
  }
  return t;
}

const parseList = (text, sep) => text.split(sep).map((t) => t.trim()).filter(Boolean).map(parseScalar);

/** "a=x|y; b=1" -> {a: ["x", "y"], b: [1]}; text without "=" goes as it is, for Python to reject. */
function parseWhen(text) {
  const parts = text.split(";").map((t) => t.trim()).filter(Boolean);
  if (!parts.length) return undefined;
  if (parts.some((p) => !p.includes("="))) return text.trim();
  const condition = (p) => [p.slice(0, p.indexOf("=")).trim(), parseList(p.slice(p.indexOf("=") + 1), "|")];
  return Object.fromEntries(parts.map(condition));
}

/** The text parseScalar reads back as `v`. */
const scalarText = (v) => (typeof v === "string" && parseScalar(v) === v && !/[,|;]/.test(v) ? v : JSON.stringify(v));

function whenText(when) {
  return Object.entries(asDict(when)).map(([k, vs]) => `${k}=${[].concat(vs).map(scalarText).join("|")}`).join("; ");
}

const kindClass = (type) => `hpo-param hpo-${type === "categorical" ? "categorical" : "numeric"}`;

function paramRow(name, spec, editable) {
  const type = TYPES.includes(spec.type) ? spec.type : "float";
  const text = (field, value, placeholder, title) => {
    const props = { type: "text", "data-field": field, placeholder, title, spellcheck: "false" };
    return h("input", { ...props, value: value == null ? "" : String(value) });
  };
  const remove = h("button", { type: "button", class: "hpo-remove", "data-action": "remove", text: "×" });
  return h("div", { class: kindClass(type), "data-param": name },
    editable ? text("name", name, "name") : h("span", { class: "hpo-param-name", title: name, text: name }),
    h("select", { "data-field": "type" }, TYPES.map((t) => h("option", { value: t, text: t, selected: t === type }))),
    text("low", spec.low, "low"),
    text("high", spec.high, "high"),
    text("step", spec.step, "step"),
    h("label", { class: "hpo-log", title: "sample on a log scale" },
      h("input", { type: "checkbox", "data-field": "log", checked: !!spec.log }), "log"),
    text("choices", asList(spec.choices).map(scalarText).join(", "), "choices: a, b, 3",
      "comma separated; numbers, true, false and null read as in JSON"),
    text("when", whenText(spec.when), "when: param=v1|v2",
      "only sampled when earlier parameters take these values; several: a=x; b=1|2"),
    editable ? remove : h("span"),
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
  if (when !== undefined) spec.when = when;
  return spec;
}

const SOURCE_TEXT = {
  declared: "declared space",
  discovered: "discovered from finished trials: narrow a range, fix a value or change choices for later trials",
  none: "no space yet: add parameters",
};

/** Rows of parameters; edits are drafts the kernel validates, Apply sends them for later trials. */
export function buildSpaceEditor(model) {
  const source = h("div", { class: "hpo-space-source" });
  const list = h("div", { class: "hpo-param-list" });
  const error = h("div", { class: "hpo-space-error", role: "alert" });
  const button = (cls, text, title, extra = {}) => h("button", { type: "button", class: cls, text, title, ...extra });
  const add = button("hpo-add", "+ parameter", "add a parameter");
  const reset = button("hpo-reset", "Discard edits", "reload the space the next trials use");
  const apply = button("hpo-primary", "Apply", "use this space for later trials", { "data-cmd": COMMANDS.APPLY });
  const labels = h("div", { class: "hpo-param hpo-param-head" },
    ["name", "type", "low", "high", "step", "log", "when", ""].map((t) => h("span", { text: t })));
  const node = h("div", { class: "hpo-space" },
    h("div", { class: "hpo-section-head" },
      h("b", { text: "Search space" }), source, h("span", { class: "hpo-grow" }), add, reset, apply),
    labels, list, error);
  let dirty = false; // the rows hold edits the kernel has not applied
  let stale = false; // the kernel's space changed while the user was editing
  let localError = "";
  const editable = () => ["declared", "none", undefined].includes(read(model, "space").source);

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

// ---------------------------------------------------------------- sampler, pruner and run settings

/** Pickers and run settings; every change sends {"cmd": "config"} with just what changed. */
export function buildConfigEditor(model) {
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
  const node = h("div", { class: "hpo-config" },
    h("div", { class: "hpo-section-head" }, h("b", { text: "Run settings" })),
    pickers.map((p) => h("div", { class: "hpo-picker" }, h("label", {}, h("span", { text: p.kind }), p.select), p.box)),
    settings,
    error);

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

const NUMBER_STEPS = { int: "1", float: "any" };

/** One run setting (a ConfigField): a number input for "int" and "float", else a text input;
 * it sends numbers as numbers, text as it is, and an empty input as null. */
function settingInput(spec, send) {
  const numeric = Object.hasOwn(NUMBER_STEPS, spec.kind);
  const input = h("input", {
    type: numeric ? "number" : "text", "data-config": spec.name, step: NUMBER_STEPS[spec.kind],
    min: numeric ? spec.min : null, placeholder: spec.nullable ? "none" : null,
  });
  const value = () => (input.value.trim() === "" ? null : numeric ? Number(input.value) : input.value);
  const sendValue = debounced(() => send({ [spec.name]: value() }), EDIT_DELAY_MS);
  input.addEventListener("input", sendValue);
  const node = h("label", { title: spec.help || null }, h("span", { text: spec.label || spec.name }), input);
  return { name: spec.name, input, node, cancel: sendValue.cancel };
}

/** The chosen sampler's (or pruner's) main options as small inputs; the default is the placeholder. */
function fillOptions(box, name, defaults, values) {
  const key = `${name}:${Object.keys(defaults).join(",")}`;
  if (box.dataset.key !== key && !box.contains(document.activeElement)) {
    box.replaceChildren(...Object.entries(defaults).map(([option, fallback]) => h("label", {},
      h("span", { text: option }),
      h("input", {
        type: "text", "data-option": option,
        placeholder: fallback == null ? "auto" : scalarText(fallback),
      }),
    )));
    box.dataset.key = key;
  }
  for (const input of box.querySelectorAll("input[data-option]")) {
    const v = values[input.dataset.option];
    if (document.activeElement !== input) input.value = v === undefined ? "" : scalarText(v);
  }
}

function readOptions(box) {
  const filled = [...box.querySelectorAll("input[data-option]")].filter((input) => input.value.trim());
  return Object.fromEntries(filled.map((input) => [input.dataset.option, parseScalar(input.value)]));
}
