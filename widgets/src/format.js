// Values read defensively, and numbers, durations and sizes as short text.

export const isNum = (v) => typeof v === "number" && Number.isFinite(v);
export const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
export const asDict = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});
export const asList = (v) => (Array.isArray(v) ? v : []);

export function fmtNum(v, digits = 4) {
  if (!isNum(v)) return v == null ? "—" : String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e7) return String(v);
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(Math.max(0, digits - 2)).replace(/\.?0*e\+?/, "e");
  return String(+v.toPrecision(digits));
}

export function fmtValue(v) {
  if (typeof v === "number") return fmtNum(v, 6);
  return typeof v === "string" ? v : JSON.stringify(v);
}

export function fmtDuration(seconds) {
  if (!isNum(seconds)) return "—";
  const t = Math.max(0, Math.round(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  const [hh, mm, ss] = [Math.floor(t / 3600), Math.floor((t % 3600) / 60), t % 60];
  return hh > 0 ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
}

export const fmtSeconds = (seconds) => (seconds < 120 ? `${fmtNum(seconds, 2)} s` : fmtDuration(seconds));

export function fmtBytes(bytes) {
  if (!isNum(bytes)) return "—";
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

export function fmtClock(epoch, withSeconds) {
  const d = new Date(epoch * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${withSeconds ? `:${pad(d.getSeconds())}` : ""}`;
}

export const short = (text, chars) => (text.length > chars ? `${text.slice(0, Math.max(1, chars - 1))}…` : text);

export function lowerBound(sorted, v) {
  let [lo, hi] = [0, sorted.length];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
