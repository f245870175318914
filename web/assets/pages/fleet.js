// Fleet: what the conductor saw, from its latest results in the execution log: the health of
// every handler and the health percentage over time, every handler's figures, and the machine.
// When it has never run, how to grant and schedule it.

import { api, query } from "../api.js";
import { lines } from "../charts.js";
import { agoEl, badge, count, h, millis, stat, time, update } from "../dom.js";

let els = null;

/** The conductor's successful results looked at (newest first). */
const LOOKED_AT = 200;

/** Beyond this many handlers, those with nothing to look at are folded under the others. */
const FOLD_OVER = 12;

/** The folds the user opened, kept open when a newer result redraws them. */
const opened = new Set();

/** A fold with `summary`, open when the user left it open. */
function fold(id, summary, content) {
  return h("details", {
    class: "fleet-fold", id, open: opened.has(id),
    ontoggle: (e) => (e.target.open ? opened.add(id) : opened.delete(id)),
  }, h("summary", {}, summary), content);
}

/** `rows` in full when few; otherwise those `notable` first and the rest in a fold. */
function foldedRows(id, rows, notable, table, rest) {
  if (rows.length <= FOLD_OVER) return [table([...rows.filter(notable), ...rows.filter((r) => !notable(r))])];
  const shown = rows.filter(notable);
  const others = rows.filter((r) => !notable(r));
  return [
    shown.length ? table(shown) : null,
    others.length ? fold(id, rest(others.length), table(others)) : null,
  ];
}

const plural = (n, one, many) => `${count(n)} ${n === 1 ? one : many}`;
const mem = (m) => (m == null ? "—" : `${Number(m).toFixed(1)} MiB`);

export default {
  title: "Fleet",

  mount(view) {
    els = {
      intro: h("div", {}),
      health: h("section", { class: "card", id: "fleet-health", "aria-label": "Health" }),
      chart: h("div", { class: "chart-slot" }),
      metrics: h("section", { class: "card", id: "fleet-metrics", "aria-label": "Handlers' figures" }),
      system: h("section", { class: "card", id: "fleet-system", "aria-label": "The machine" }),
    };
    view.append(
      h("h1", {}, "Fleet"),
      els.intro,
      els.health,
      h("div", { class: "charts compact-chart" }, els.chart),
      els.metrics,
      els.system,
    );
  },

  async refresh() {
    const log = await api(`/api/v1/executions${query({ handler: "conductor", status: "success", limit: LOOKED_AT })}`);
    if (!els) return;
    const runs = log.executions.filter((e) => e.result && typeof e.result === "object");
    const latest = (method) => runs.find((e) => e.method === method);
    const checks = runs.filter((e) => e.method === "health_check" || e.method === "notify_on_unhealthy");
    renderIntro(runs.length > 0);
    renderHealth(latest("health_check"));
    renderChart(checks);
    renderMetrics(latest("collect_metrics"));
    renderSystem(latest("get_system_metrics"));
  },

  unmount() {
    els = null;
  },
};

function renderIntro(ran) {
  update(els.intro, ran, () => ran
    ? h("p", { class: "muted" },
      "From the conductor's latest results in the execution log; it sees the fleet through its read-only ",
      h("code", {}, "fleet"), " grant.")
    : h("section", { class: "card", id: "fleet-never", "aria-label": "The conductor has not run" },
      h("h2", {}, "The conductor has not run yet"),
      h("p", {}, "The conductor is a handler like any other: grant it the read-only fleet view, then schedule it. ",
        "Its results appear here."),
      h("pre", { class: "mono small-text" },
        "schedulezero plugins grant conductor fleet\n" +
        "curl -X POST localhost:8888/api/schedule -H 'content-type: application/json' \\\n" +
        "  -d '{\"handler_id\": \"conductor\", \"job_method\": \"health_check\", \"job_params\": {},\n" +
        "       \"job_id\": \"fleet-health\", \"trigger\": {\"type\": \"interval\", \"minutes\": 5}}'"),
      h("p", { class: "muted" }, "Schedule ", h("code", {}, "collect_metrics"), " and ",
        h("code", {}, "get_system_metrics"), " the same way for the tables below.")));
}

function renderHealth(run) {
  update(els.health, run?.id ?? null, () => {
    if (!run) {
      return [h("h2", {}, "Health"), h("p", { class: "muted" }, "No health check yet: schedule the conductor's health_check.")];
    }
    const r = run.result;
    const handlers = Object.entries(r.handlers || {});
    const table = (rows) => h("div", { class: "table-wrap" }, h("table", { class: "data compact stack" },
      h("caption", { class: "sr-only" }, "Each handler at the latest health check"),
      h("thead", {}, h("tr", {}, ["Handler", "Alive", "State", "Response", "Error"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map(([name, hh]) => h("tr", { dataset: { handler: name, alive: String(hh.alive) } },
        h("td", { class: "strong", dataset: { label: "Handler" } }, name),
        h("td", { dataset: { label: "Alive" } }, badge(hh.alive ? "alive" : "down")),
        h("td", { dataset: { label: "State" } }, hh.state || ""),
        h("td", { dataset: { label: "Response" } }, hh.response_time_ms == null ? "—" : millis(hh.response_time_ms)),
        h("td", { class: "muted", dataset: { label: "Error" } }, hh.error || ""))))));
    return [
      h("h2", {}, "Health ", agoEl(run.completed_at || run.started_at, "span", { class: "muted small-text", title: time(run.started_at) })),
      h("div", { class: "stats" },
        stat("health", `${Number(r.health_percentage).toFixed(1)} %`),
        stat("healthy", `${count(r.healthy)} of ${count(r.total)}`)),
      // Handlers down first; with many, the alive ones folded away.
      ...foldedRows("fleet-alive", handlers, ([, hh]) => !hh.alive, table,
        (n) => (n === handlers.length ? `All ${plural(n, "handler", "handlers")} alive` : plural(n, "more handler alive", "more handlers alive"))),
    ];
  });
}

function renderChart(checks) {
  const points = [...checks].reverse().map((e) => ({
    t: e.started_at,
    values: { health: Number(e.result.health_percentage) },
  }));
  update(els.chart, points, () => lines({
    title: "Health over time (percent of handlers alive)",
    points,
    series: [{ key: "health", label: "health" }],
    format: (v) => `${Math.round(v)} %`,
    empty: "No health checks yet.",
  }));
}

function renderMetrics(run) {
  update(els.metrics, run?.id ?? null, () => {
    if (!run) {
      return [h("h2", {}, "Handlers' figures"), h("p", { class: "muted" }, "No collect_metrics result yet.")];
    }
    const r = run.result;
    const handlers = Object.entries(r.handlers || {});
    return [
      h("h2", {}, "Handlers' figures ", agoEl(run.completed_at || run.started_at, "span", { class: "muted small-text" })),
      h("div", { class: "stats" },
        stat("handlers", count(r.summary?.total_handlers ?? handlers.length)),
        stat("alive", count(r.summary?.alive_count ?? 0)),
        stat("memory", mem(r.summary?.total_memory_mb))),
      // With many handlers: those down or with errors, and remote handlers (their own figures),
      // first; the rest folded away.
      ...foldedRows("fleet-figures", handlers, ([, m]) => !m.alive || m.errors > 0 || m.kind === "remote", figures,
        (n) => plural(n, "more plugin, alive and without errors", "more plugins, alive and without errors")),
    ];
  });
}

function figures(rows) {
  const mem = (m) => (m == null ? "—" : `${Number(m).toFixed(1)} MiB`);
  return h("div", { class: "table-wrap" }, h("table", { class: "data compact stack" },
    h("caption", { class: "sr-only" }, "Each handler's figures"),
    h("thead", {}, h("tr", {}, ["Handler", "Kind", "State", "Memory", "Calls", "Errors", "Own figures"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map(([name, m]) => {
      const own = m.metrics;
      const reported = own && typeof own === "object";
      return h("tr", { dataset: { handler: name, kind: m.kind } },
        h("td", { class: "strong", dataset: { label: "Handler" } }, name),
        h("td", { dataset: { label: "Kind" } }, m.kind),
        h("td", { dataset: { label: "State" } }, badge(m.kind === "remote" ? m.status : m.state)),
        h("td", { dataset: { label: "Memory" } }, mem(m.kind === "remote" ? own?.memory_mb : m.memory_mb)),
        h("td", { dataset: { label: "Calls" } }, count(m.calls)),
        h("td", { dataset: { label: "Errors" } }, count(m.errors)),
        h("td", { class: "muted small-text", dataset: { label: "Own figures" } },
          m.kind !== "remote" ? "" : reported
            ? `CPU ${own.cpu_percent ?? "?"} %, ${own.threads ?? "?"} threads, up ${own.uptime_seconds ?? "?"} s, ${own.calls_served ?? "?"} calls`
            : "not reported"));
    }))));
}

function renderSystem(run) {
  update(els.system, run?.id ?? null, () => {
    if (!run) {
      return [h("h2", {}, "The machine"), h("p", { class: "muted" }, "No get_system_metrics result yet.")];
    }
    const r = run.result;
    const gib = (b) => `${(b / 1024 ** 3).toFixed(1)} GiB`;
    return [
      h("h2", {}, "The machine ", agoEl(run.completed_at || run.started_at, "span", { class: "muted small-text" })),
      h("div", { class: "stats" },
        stat("CPU", `${r.cpu_percent} %`, `${r.cpus} cores`),
        stat("memory", `${r.memory.percent} %`, `${gib(r.memory.used)} of ${gib(r.memory.total)}`),
        r.disk ? stat("disk", `${r.disk.percent} %`, `${gib(r.disk.free)} free of ${gib(r.disk.total)}`) : null),
    ];
  });
}
