// What the panel knows: traits read defensively, the finished trials it holds, and the local
// history (events, worker resources) it keeps from the progress trait.

import { asDict, asList, isNum } from "./format.js";
import { COMMANDS, MAX_ROWS, MESSAGES, TRAITS } from "./protocol.js";

export const EVENT_HISTORY = 500;
const SERIES_LENGTH = 300; // resource samples kept per worker

/** A trait read defensively: traits may be empty, partial or of the wrong type. */
export function read(model, name) {
  const v = model.get(name);
  if (TRAITS[name] === "list") return asList(v);
  if (TRAITS[name] === "text") return v == null ? "" : String(v);
  return asDict(v);
}

/** Everything the views draw from besides the traits. */
export function newStore() {
  return { rows: [], version: 0, syncing: false, events: [], seen: {}, series: new Map(), memo: {} };
}

/** Takes a `trials` message into `store.rows` (false for any other message); holding more than
 * MAX_ROWS, asks the kernel for a fresh sample (`sync`), which comes back as a reset. */
export function receiveTrials(store, msg, model) {
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

/** Makes a row safe to draw: `p` a mapping, `iv` only finite [step, value] pairs. */
function cleanRow(row) {
  row.p = asDict(row.p);
  row.iv = asList(row.iv).filter((pt) => Array.isArray(pt) && isNum(pt[0]) && isNum(pt[1]));
  return row;
}

export function objectiveOf(row, i = 0) {
  const v = row && Array.isArray(row.v) ? row.v[i] : null;
  return isNum(v) ? v : null;
}

export const lastValue = (iv) => (iv.length ? iv[iv.length - 1][1] : null);

export function objectiveName(study, i) {
  const dirs = asList(study.directions);
  const names = String(study.objective || "").split(",").map((t) => t.trim()).filter(Boolean);
  if (dirs.length <= 1) return names[0] || "objective";
  return names.length === dirs.length ? names[i] : `objective ${i + 1}`;
}

/** Params that have values, by importance, then the space's order, then first seen. */
export function paramInfo(rows, space, importance) {
  const specs = asDict(space.params);
  const names = new Set(asList(importance.params).filter(Array.isArray).map((p) => String(p[0])));
  for (const name of Object.keys(specs)) names.add(name);
  for (const row of rows) for (const name of Object.keys(row.p)) names.add(name);
  const info = [];
  for (const name of names) {
    const spec = asDict(specs[name]);
    const values = rows.map((r) => r.p[name]).filter((v) => v !== undefined);
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

/** Prepends the events not seen yet (progress.events holds the last 20, events_total counts all). */
export function takeEvents(history, seen, p) {
  const events = asList(p.events).filter((e) => typeof e === "string");
  const total = isNum(p.events_total) ? p.events_total : null;
  let fresh;
  if (total == null) fresh = events.slice(events.lastIndexOf(history[0]) + 1);
  else if (seen.total == null || total < seen.total) fresh = events; // first look, or a new run
  else fresh = events.slice(events.length - Math.min(events.length, total - seen.total));
  seen.total = total;
  if (!fresh.length) return false;
  history.unshift(...[...fresh].reverse());
  history.length = Math.min(history.length, EVENT_HISTORY);
  return true;
}

/** Appends each worker's new sample to its series; an unchanged snapshot adds nothing. */
export function sampleResources(series, p) {
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
