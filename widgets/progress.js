// hpo_nb live progress: renders the `progress` snapshot the kernel sends (at most 4 per second).
// Elapsed time and ETA tick here, so an idle kernel sends nothing.

function fmtDuration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "—";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

function fmtValue(v) {
  if (v == null) return "—";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(6);
  return String(v);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function render({ model, el: root }) {
  root.classList.add("hpo-progress");
  const title = el("div", "hpo-title");
  const bar = el("div", "hpo-bar");
  const fill = el("div", "hpo-bar-fill");
  bar.appendChild(fill);
  const counts = el("div", "hpo-counts");
  const best = el("div", "hpo-best");
  const timing = el("div", "hpo-timing");
  const sampler = el("div", "hpo-sampler");
  const failure = el("div", "hpo-failure");
  const workers = el("div", "hpo-workers");
  const events = el("div", "hpo-events");
  root.append(title, bar, counts, best, timing, sampler, failure, workers, events);

  function mib(bytes) {
    return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
  }

  function workerText(w) {
    const parts = [`worker ${w.worker}`, w.trial != null ? `trial ${w.trial}` : "idle",
      `CPU ${Math.round(w.cpu)}%`, `RSS ${mib(w.rss)}`];
    if (w.gpu_utilization != null) {
      const total = w.gpu_memory_total ? `/${mib(w.gpu_memory_total)}` : "";
      parts.push(`GPU ${w.gpu_utilization}% ${mib(w.gpu_memory_used || 0)}${total}`);
    }
    return parts.join(" · ");
  }

  function chip(label, value, kind) {
    const c = el("span", `hpo-chip hpo-${kind}`);
    c.append(el("b", null, String(value)), document.createTextNode(` ${label}`));
    c.dataset.kind = kind;
    c.dataset.value = String(value);
    return c;
  }

  function timingText(p) {
    const now = Date.now() / 1000;
    const end = p.ended_at ?? now;
    const elapsed = Math.max(0, end - p.started_at);
    let eta = null;
    const doneHere = p.finished - p.finished_before;
    if (p.ended_at != null) eta = 0;
    else if (doneHere > 0) eta = (Math.max(0, p.target - p.finished) * elapsed) / doneHere;
    return `elapsed ${fmtDuration(elapsed)} · ETA ${fmtDuration(eta)}`;
  }

  function update() {
    const p = model.get("progress") || {};
    if (p.study == null) return;
    const pct = p.target > 0 ? Math.min(100, (100 * p.finished) / p.target) : 0;
    root.dataset.state = p.state;
    root.dataset.finished = String(p.finished);
    root.dataset.target = String(p.target);
    title.textContent = "";
    title.append(
      el("span", "hpo-study", p.study),
      el("span", `hpo-state hpo-state-${p.state}`, p.state),
      el("span", "hpo-reason", p.reason || p.note || ""),
    );
    fill.style.width = `${pct}%`;
    bar.title = `${p.finished} of ${p.target} trials finished`;
    counts.textContent = "";
    counts.append(
      el("span", "hpo-fraction", `${p.finished}/${p.target}`),
      chip("complete", p.complete, "complete"),
      chip("pruned", p.pruned, "pruned"),
      chip("failed", p.failed, "failed"),
      chip("running", p.running, "running"),
    );
    best.textContent = "";
    if (p.best_value != null) {
      best.append(el("span", "hpo-label", "best "), el("b", "hpo-best-value", fmtValue(p.best_value)));
      if (p.best_number != null) best.append(el("span", "hpo-label", ` (trial ${p.best_number})`));
      const params = el("span", "hpo-params");
      for (const [k, v] of Object.entries(p.best_params || {})) {
        params.append(el("code", null, `${k}=${fmtValue(v)}`));
      }
      best.append(params);
    }
    timing.textContent = timingText(p);
    sampler.textContent = p.sampler ? `sampler ${p.sampler}` : "";
    failure.textContent = p.last_failure ? `last failure: ${p.last_failure}` : "";
    workers.textContent = "";
    if (!p.ended_at) {
      for (const w of p.resources || []) workers.append(el("div", "hpo-worker", workerText(w)));
    }
    events.textContent = "";
    for (const e of (p.events || []).slice(-3)) events.append(el("div", "hpo-event", e));
  }

  update();
  model.on("change:progress", update);
  const ticker = setInterval(() => {
    const p = model.get("progress") || {};
    if (p.study != null && p.ended_at == null) timing.textContent = timingText(p);
  }, 1000);
  return () => {
    clearInterval(ticker);
    model.off("change:progress", update);
  };
}

export default { render };
