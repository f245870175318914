// Overview: schedules, handlers and the last hour's executions at a glance, the host's memory
// and CPU, and the charts of the last hour.

import { api, query } from "../api.js";
import { OUTCOMES, bars, lines } from "../charts.js";
import { bytes, count, h, micros, span, stat, update } from "../dom.js";

let els = null;
/** The history samples seen so far; each poll asks only for newer ones. */
let history = { interval_s: 0, span_s: 3600, samples: [] };

function card(title, body) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), body);
}

export default {
  title: "Overview",

  mount(view) {
    history = { interval_s: 0, span_s: 3600, samples: [] };
    els = {
      cards: h("div", { class: "cards" }),
      executions: h("div", { class: "chart-slot" }),
      latency: h("div", { class: "chart-slot" }),
      memory: h("div", { class: "chart-slot" }),
    };
    view.append(
      h("h1", {}, "Overview"),
      els.cards,
      h("div", { class: "charts" }, els.executions, els.latency, els.memory),
    );
  },

  async refresh() {
    const last = history.samples[history.samples.length - 1];
    const [host, metrics, timeline, newer] = await Promise.all([
      api("/api/v1/host"),
      api("/api/v1/metrics"),
      api("/api/v1/executions/timeline"),
      api(`/api/v1/metrics/history${query({ after: last?.at })}`),
    ]);
    if (!els) return;
    const samples = [...history.samples, ...newer.samples];
    const end = samples.length ? new Date(samples[samples.length - 1].at).getTime() : 0;
    history = {
      interval_s: newer.interval_s,
      span_s: newer.span_s,
      samples: samples.filter((s) => new Date(s.at).getTime() > end - newer.span_s * 1000),
    };
    renderCards(host, metrics, timeline);
    renderCharts(timeline, history);
  },

  unmount() {
    els = null;
  },
};

function renderCards(host, metrics, timeline) {
  const lastHour = { success: 0, error: 0, skipped: 0, missed: 0, retry: 0 };
  for (const b of timeline.buckets) {
    for (const k of Object.keys(lastHour)) lastHour[k] += b[k] || 0;
  }
  const remote = { online: 0, unreachable: 0, offline: 0 };
  for (const r of Object.values(metrics.remote_handlers || {})) {
    remote[r.status] = (remote[r.status] || 0) + 1;
  }
  const byState = metrics.runtime.plugins_by_state || {};
  const proc = metrics.host.process || {};
  const sys = metrics.host.system || {};
  const data = { s: host.schedules, byState, remote, lastHour, proc, sys };
  update(els.cards, data, () => [
    card("Schedules", h("div", { class: "stats" },
      stat("active", count(host.schedules.active)),
      stat("paused", count(host.schedules.paused)))),
    card("WebAssembly plugins", h("div", { class: "stats" },
      ["hot", "warming", "cooling", "cold"].map((s) => stat(s, count(byState[s] || 0))),
      host.rejected_plugins.length ? stat("rejected", count(host.rejected_plugins.length)) : null)),
    card("Remote handlers", h("div", { class: "stats" },
      Object.entries(remote).map(([s, n]) => stat(s, count(n))))),
    card("Executions, last hour", h("div", { class: "stats" },
      stat("success", count(lastHour.success)),
      stat("error", count(lastHour.error)),
      stat("skipped", count(lastHour.skipped + lastHour.missed), lastHour.missed ? `${lastHour.missed} missed` : null))),
    card(`Host, up ${span(proc.uptime_seconds)}`, h("div", { class: "stats" },
      stat("memory", bytes(proc.rss_bytes), `of ${bytes(sys.memory_total_bytes)}`),
      stat("CPU", `${(proc.cpu_percent || 0).toFixed(1)} %`, `${sys.cpus || "?"} cores`))),
  ]);
}

function renderCharts(timeline, history) {
  const buckets = timeline.buckets.map((b) => ({ t: b.start, values: b }));
  update(els.executions, buckets, () => bars({
    title: `Executions per ${timeline.bucket_s === 60 ? "minute" : `${timeline.bucket_s} s`}, by outcome`,
    buckets,
    series: OUTCOMES,
    empty: "No executions in the last hour.",
  }));
  const samples = history.samples || [];
  const latency = samples.map((s) => ({
    t: s.at,
    values: { cold: s.cold_start_us_mean, call: s.call_us_mean },
  }));
  update(els.latency, latency, () => lines({
    title: "Cold start and call latency (mean per sample)",
    points: latency,
    series: [
      { key: "cold", label: "cold start" },
      { key: "call", label: "call" },
    ],
    format: micros,
    empty: samples.length
      ? "No plugin calls in the last hour."
      : `Samples every ${history.interval_s} s; the first comes shortly.`,
  }));
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.plugins || {})))].sort();
  const series = names.map((name, i) => ({ key: `p${i}`, cls: `p${i % 8}`, label: name, name }));
  const memory = samples.map((s) => {
    const values = {};
    for (const sr of series) values[sr.key] = s.plugins?.[sr.name]?.memory_bytes ?? 0;
    return { t: s.at, values };
  });
  update(els.memory, { memory, names }, () => lines({
    title: "Memory of hot instances, by plugin",
    points: memory,
    series,
    format: bytes,
    empty: "No live instances in the last hour.",
  }));
}
