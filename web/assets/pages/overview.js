// Overview: schedules, handlers and the last hour's executions at a glance, the host's memory
// and CPU, what runs next and what failed last, and the charts of the last hour.

import { api, query } from "../api.js";
import { OUTCOMES, bars, lines } from "../charts.js";
import { agoEl, badge, bytes, count, h, micros, span, stat, time, update } from "../dom.js";
import { shownState } from "./handlers.js";

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
      upcoming: h("section", { class: "card", id: "upcoming", "aria-label": "Upcoming runs" }),
      failures: h("section", { class: "card", id: "failures", "aria-label": "Recent failures" }),
      nodes: h("section", { class: "card", id: "nodes", "aria-label": "Nodes" }),
      executions: h("div", { class: "chart-slot" }),
      latency: h("div", { class: "chart-slot" }),
      memory: h("div", { class: "chart-slot" }),
    };
    view.append(
      h("h1", {}, "Overview"),
      els.cards,
      h("div", { class: "lists" }, els.upcoming, els.failures),
      els.nodes,
      h("div", { class: "charts" }, els.executions, els.latency, els.memory),
    );
  },

  async refresh() {
    const last = history.samples[history.samples.length - 1];
    const [host, metrics, timeline, newer, active, failed, nodes] = await Promise.all([
      api("/api/v1/host"),
      api("/api/v1/metrics"),
      api("/api/v1/executions/timeline"),
      api(`/api/v1/metrics/history${query({ after: last?.at })}`),
      api("/api/v1/schedules?state=active&limit=1000"),
      api("/api/v1/executions?status=error&limit=5"),
      api("/api/v1/nodes"),
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
    renderLists(active.schedules, failed.executions);
    renderNodes(nodes);
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
  // As the handlers page shows them: hot only with instances kept warm.
  const byState = {};
  for (const p of Object.values(metrics.plugins || {})) {
    const s = shownState(p.state, p.live_instances);
    byState[s] = (byState[s] || 0) + 1;
  }
  const proc = metrics.host.process || {};
  const sys = metrics.host.system || {};
  const data = { s: host.schedules, byState, remote, lastHour, proc, sys };
  update(els.cards, data, () => [
    card("Schedules", h("div", { class: "stats" },
      stat("active", count(host.schedules.active)),
      stat("paused", count(host.schedules.paused)))),
    card("WebAssembly plugins", h("div", { class: "stats" },
      ["hot", "loaded", "warming", "cooling", "cold"]
        .filter((s) => s !== "loaded" || byState.loaded)
        .map((s) => stat(s, count(byState[s] || 0))),
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

/** The next five fire times, and the last five failures. */
function renderLists(schedules, failures) {
  const next = schedules
    .filter((s) => s.next_fire_time)
    .sort((a, b) => new Date(a.next_fire_time) - new Date(b.next_fire_time))
    .slice(0, 5);
  update(els.upcoming, next.map((s) => [s.id, s.next_fire_time]), () => [
    h("h2", {}, "Upcoming runs"),
    next.length
      ? h("ul", { class: "plain-list" }, next.map((s) => h("li", { dataset: { id: s.id } },
        h("a", { href: `#/schedules?id=${encodeURIComponent(s.id)}`, class: "strong" }, s.id),
        h("span", { class: "muted" }, ` ${s.handler}.${s.method} · ${s.trigger_description}`),
        h("div", {}, time(s.next_fire_time), " ", agoEl(s.next_fire_time, "span", { class: "muted" })))))
      : h("p", { class: "muted" }, "Nothing scheduled: no active schedule has a fire time ahead."),
  ]);
  update(els.failures, failures.map((e) => e.id), () => [
    h("h2", {}, "Recent failures"),
    failures.length
      ? h("ul", { class: "plain-list" }, failures.map((e) => h("li", { dataset: { id: e.id } },
        h("a", { href: `#/executions?status=error&schedule=${encodeURIComponent(e.schedule_id)}`, class: "strong" }, e.schedule_id),
        " ", badge(e.status),
        h("span", { class: "mono" }, ` ${e.error_code || ""}`),
        h("div", { class: "muted" }, agoEl(e.started_at, "span"), e.error ? ` · ${e.error}` : ""))))
      : h("p", { class: "muted" }, "No failures: every attempt in the log succeeded or is still to be retried."),
  ]);
}

/** The hosts working on the store: one on SQLite, several on PostgreSQL. */
function renderNodes(list) {
  const rows = list.nodes.map((n) => [n.id, n.state, n.in_flight, n.heartbeat_at, n.skew_ms]);
  update(els.nodes, rows, () => [
    h("h2", {}, `Nodes on the ${list.store === "postgres" ? "shared PostgreSQL" : "SQLite"} store`),
    h("p", { class: "muted" }, list.store === "postgres"
      ? `A host that stops beating for ${list.lease_s} s is lost: its runs are taken over by another.`
      : "SQLite: this host alone. Hosts on one PostgreSQL store share the work."),
    h("div", { class: "table-wrap" }, h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["Node", "State", "Version", "Plugins", "In flight", "Last beat", "Clock skew"]
        .map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, list.nodes.map((n) => h("tr", { dataset: { id: n.id, state: n.state } },
        h("td", {},
          h("div", { class: "strong" }, n.name, n.id === list.this_node ? h("span", { class: "muted" }, " (this host)") : null),
          h("div", { class: "muted mono small-text", title: n.id }, `${n.id.slice(-8)} · pid ${n.pid}${n.address ? ` · ${n.address}` : ""}`)),
        h("td", {}, badge(n.state)),
        h("td", { class: "mono" }, n.version),
        h("td", { title: n.plugins.join(", ") }, count(n.plugins.length)),
        h("td", {}, count(n.in_flight)),
        h("td", {}, agoEl(n.heartbeat_at, "span")),
        h("td", { class: "mono" }, `${n.skew_ms.toFixed(1)} ms`)))))),
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
