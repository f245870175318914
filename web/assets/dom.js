// Building the page without markup strings (every value from the host lands as text), and the
// formats the pages share: times in a given zone, sizes, durations.

/**
 * An element: `h("a", { href: "#/", class: "x", onclick: fn }, "text", child, [more])`.
 * Attributes starting with `on` are listeners; `false`/`null`/`undefined` ones are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const el = tag === "svg" || SVG_TAGS.has(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

const SVG_TAGS = new Set(["g", "rect", "line", "path", "polyline", "circle", "text", "title"]);

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** The viewer's time zone. */
export const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

const formatters = new Map();

function formatter(zone, kind) {
  const key = `${zone}|${kind}`;
  let f = formatters.get(key);
  if (!f) {
    const options = kind === "short"
      ? { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }
      : { dateStyle: "medium", timeStyle: "medium", hourCycle: "h23" };
    try {
      f = new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone });
    } catch {
      f = new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" });
    }
    formatters.set(key, f);
  }
  return f;
}

/** A time (ISO text or Date) in a zone (the viewer's by default). */
export function time(value, zone = viewerZone, kind = "long") {
  if (!value) return "—";
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return formatter(zone, kind).format(d);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });

/** "in 5 sec", "3 min ago". */
export function ago(value, now = Date.now()) {
  if (!value) return "";
  const t = new Date(value).getTime();
  if (Number.isNaN(t)) return "";
  const s = (t - now) / 1000;
  const abs = Math.abs(s);
  if (abs < 60) return relative.format(Math.round(s), "second");
  if (abs < 3600) return relative.format(Math.round(s / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(s / 3600), "hour");
  return relative.format(Math.round(s / 86400), "day");
}

/**
 * A relative time ("3 min ago") that stays current: `refreshAgo()` rewrites every one on the
 * page, so the rows holding them need not be rebuilt as time passes.
 */
export function agoEl(value, tag = "span", attrs = {}) {
  return h(tag, { ...attrs, "data-ago": value || "" }, ago(value));
}

/** Brings every relative time under `root` up to date. */
export function refreshAgo(root) {
  const now = Date.now();
  for (const el of root.querySelectorAll("[data-ago]")) {
    const text = ago(el.dataset.ago, now);
    if (el.textContent !== text) el.textContent = text;
  }
}

/** A local date-time (`<input type=datetime-local>` value) as an ISO instant, or undefined. */
export function instant(local) {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** Bytes as KiB, MiB, GiB. */
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** Microseconds, in the unit that reads best. */
export function micros(us) {
  if (us === null || us === undefined || Number.isNaN(Number(us))) return "—";
  const v = Number(us);
  if (v < 1000) return `${v.toFixed(v < 10 ? 1 : 0)} µs`;
  if (v < 1e6) return `${(v / 1000).toFixed(v < 1e4 ? 2 : 1)} ms`;
  return `${(v / 1e6).toFixed(2)} s`;
}

/** Milliseconds, in the unit that reads best. */
export function millis(ms) {
  if (ms === null || ms === undefined) return "—";
  return micros(Number(ms) * 1000);
}

/** A number with the viewer's grouping. */
export function count(n) {
  if (n === null || n === undefined) return "—";
  return Number(n).toLocaleString();
}

/** A status as a coloured badge (the colour is decoration; the word carries the meaning). */
export function badge(status) {
  const s = String(status ?? "unknown");
  return h("span", { class: `badge s-${s.replace(/[^a-z_-]/gi, "")}` }, s);
}

/** Pretty JSON for a <pre>. */
export function pretty(value) {
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** A labelled figure for the overview's cards. */
export function stat(label, value, extra) {
  return h("div", { class: "stat" },
    h("span", { class: "stat-label" }, label),
    h("span", { class: "stat-value" }, value),
    extra ? h("span", { class: "stat-extra" }, extra) : null);
}

/** An empty-table row. */
export function emptyRow(columns, text) {
  return h("tr", { class: "empty" }, h("td", { colspan: columns }, text));
}

const shown = new WeakMap();

/**
 * Fills `el` with `render()` unless `data` is what it showed last time: a poll that brings
 * nothing new leaves the page (focus, open tooltips, scroll) alone.
 */
export function update(el, data, render) {
  const key = JSON.stringify(data);
  if (shown.get(el) === key) return;
  shown.set(el, key);
  fill(el, render());
}

/** A length of time in seconds, as "3 d 4 h", "2 h 5 min", "4 min", "12 s". */
export function span(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${hr} h`;
  if (hr) return `${hr} h ${m} min`;
  if (m) return `${m} min`;
  return `${s} s`;
}

const rowKeys = new WeakMap();

/**
 * Shows `items` as the rows of `tbody`, one per item, keeping the row element of an item whose
 * data did not change (a live update does not pull a button from under a pointer), and
 * `empty` when there are none.
 */
export function rows(tbody, items, render, empty) {
  if (!items.length) {
    update(tbody, { empty: true }, () => empty);
    return;
  }
  shown.delete(tbody);
  const old = new Map();
  for (const tr of tbody.rows) {
    const key = rowKeys.get(tr);
    if (key !== undefined) old.set(key, tr);
  }
  // Each cell is labelled with its column's heading, for the stacked layout of small screens.
  const head = tbody.parentElement?.tHead?.rows[0];
  const labels = head ? [...head.cells].map((c) => c.textContent.trim()) : [];
  const next = items.map((item) => {
    const key = JSON.stringify(item);
    const kept = old.get(key);
    if (kept) {
      old.delete(key);
      return kept;
    }
    const tr = render(item);
    [...tr.cells].forEach((td, i) => {
      if (labels[i]) td.dataset.label = labels[i];
    });
    rowKeys.set(tr, key);
    return tr;
  });
  next.forEach((tr, i) => {
    if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
  });
  while (tbody.rows.length > next.length) tbody.deleteRow(next.length);
}

/**
 * Asks in the page's confirmation dialog (`title`, `text`, the OK button's `ok` label), then
 * runs `action` if the answer is OK.
 */
export function confirmThen({ title, text, ok }, action) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.onclose = () => {
    dialog.onclose = null;
    if (dialog.returnValue === "ok") action();
  };
  dialog.showModal();
}
