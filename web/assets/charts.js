// Small SVG charts: stacked bars over time buckets and lines over samples. Colours come from the
// stylesheet (`.c-<series>`), each bar or point has a tooltip, and the chart has a text label
// for screen readers.

import { h, time } from "./dom.js";

/** The outcomes of attempts, as the execution charts stack them. */
export const OUTCOMES = [
  { key: "success", label: "success" },
  { key: "error", label: "error" },
  { key: "retry", label: "retried" },
  { key: "skipped", label: "skipped" },
  { key: "missed", label: "missed" },
];

const W = 640;
const H = 180;
const M = { top: 10, right: 10, bottom: 26, left: 70 };

/**
 * A round upper bound for an axis; for counts, an even whole number, so the middle line is a
 * whole number too.
 */
function niceMax(v, counts = false) {
  if (counts) {
    if (!(v > 0)) return 2;
    const p = 10 ** Math.max(0, Math.floor(Math.log10(v)));
    for (const m of [2, 4, 6, 8, 10]) {
      if (v <= m * p) return m * p;
    }
    return 20 * p;
  }
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (v <= m * p) return m * p;
  }
  return 10 * p;
}

function frame(label, yMax, format, times) {
  const svg = h("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-label": label,
  });
  const plotH = H - M.top - M.bottom;
  for (const f of [0, 0.5, 1]) {
    const y = M.top + plotH * (1 - f);
    svg.appendChild(h("line", { x1: M.left, x2: W - M.right, y1: y, y2: y, class: "grid" }));
    svg.appendChild(h("text", { x: M.left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, format(yMax * f)));
  }
  if (times.length) {
    const first = times[0];
    const last = times[times.length - 1];
    svg.appendChild(h("text", { x: M.left, y: H - 6, class: "axis", "text-anchor": "start" }, time(first, undefined, "short")));
    svg.appendChild(h("text", { x: W - M.right, y: H - 6, class: "axis", "text-anchor": "end" }, time(last, undefined, "short")));
  }
  return svg;
}

function legend(series) {
  return h("ul", { class: "legend" }, series.map((s) =>
    h("li", {}, h("span", { class: `swatch c-${s.cls ?? s.key}`, "aria-hidden": "true" }), s.label)));
}

/**
 * Stacked bars: `buckets` = [{ t, values: { key: n } }], `series` = [{ key, label }].
 * Returns a figure with the chart and its legend.
 */
export function bars({ title, buckets, series, format = (v) => String(Math.round(v)), empty }) {
  const totals = buckets.map((b) => series.reduce((n, s) => n + (b.values[s.key] || 0), 0));
  const all = totals.reduce((a, b) => a + b, 0);
  const yMax = niceMax(Math.max(...totals, 0), true);
  const summary = series
    .map((s) => `${s.label} ${buckets.reduce((n, b) => n + (b.values[s.key] || 0), 0)}`)
    .join(", ");
  const svg = frame(`${title}: ${summary}`, yMax, format, buckets.map((b) => b.t));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const step = plotW / Math.max(buckets.length, 1);
  const barW = Math.max(step * 0.8, 1);
  buckets.forEach((b, i) => {
    let y = M.top + plotH;
    const x = M.left + i * step + (step - barW) / 2;
    const parts = [];
    const g = h("g", {});
    for (const s of series) {
      const v = b.values[s.key] || 0;
      if (!v) continue;
      const bh = (v / yMax) * plotH;
      y -= bh;
      g.appendChild(h("rect", { x, y, width: barW, height: Math.max(bh, 0.5), class: `c-${s.cls ?? s.key}` }));
      parts.push(`${s.label} ${v}`);
    }
    if (parts.length) {
      g.appendChild(h("title", {}, `${time(b.t, undefined, "short")}: ${parts.join(", ")}`));
      svg.appendChild(g);
    }
  });
  return h("figure", { class: "chart-box" },
    h("figcaption", {}, title),
    all === 0 && empty ? h("p", { class: "muted chart-empty" }, empty) : null,
    svg,
    legend(series));
}

/**
 * Lines: `points` = [{ t, values: { key: number|null } }], `series` = [{ key, label }]; a null
 * breaks its line.
 */
export function lines({ title, points, series, format = (v) => String(v), empty }) {
  let max = 0;
  for (const p of points) {
    for (const s of series) {
      const v = p.values[s.key];
      if (v !== null && v !== undefined && v > max) max = v;
    }
  }
  const yMax = niceMax(max);
  const t0 = points.length ? new Date(points[0].t).getTime() : 0;
  const t1 = points.length ? new Date(points[points.length - 1].t).getTime() : 1;
  const span = Math.max(t1 - t0, 1);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const xOf = (t) => M.left + ((new Date(t).getTime() - t0) / span) * plotW;
  const yOf = (v) => M.top + plotH * (1 - v / yMax);
  const latest = series
    .map((s) => {
      const last = [...points].reverse().find((p) => p.values[s.key] !== null && p.values[s.key] !== undefined);
      return last ? `${s.label} ${format(last.values[s.key])}` : null;
    })
    .filter(Boolean)
    .join(", ");
  const svg = frame(`${title}${latest ? `: latest ${latest}` : ""}`, yMax, format, points.map((p) => p.t));
  let any = false;
  for (const s of series) {
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        svg.appendChild(h("polyline", { points: run.map(([x, y]) => `${x},${y}`).join(" "), class: `line c-${s.cls ?? s.key}` }));
      }
      run = [];
    };
    for (const p of points) {
      const v = p.values[s.key];
      if (v === null || v === undefined) {
        flush();
        continue;
      }
      any = true;
      const x = xOf(p.t);
      const y = yOf(v);
      run.push([x, y]);
      svg.appendChild(h("circle", { cx: x, cy: y, r: 2.5, class: `dot c-${s.cls ?? s.key}` },
        h("title", {}, `${time(p.t, undefined, "short")}: ${s.label} ${format(v)}`)));
    }
    flush();
  }
  return h("figure", { class: "chart-box" },
    h("figcaption", {}, title),
    !any && empty ? h("p", { class: "muted chart-empty" }, empty) : null,
    svg,
    legend(series));
}
