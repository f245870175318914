// Executions: the log of attempts, filtered by schedule, handler, status and time; the errors
// view; an attempt's detail with its params, result or error, and the other attempts of its run.

import { api, query } from "../api.js";
import { OUTCOMES, bars } from "../charts.js";
import { badge, bytes, emptyRow, fill, h, instant, millis, pretty, rows, time, update } from "../dom.js";

const STATUSES = ["success", "error", "retry", "running", "skipped", "missed"];
/** Rows a page shows at first, and how many more "Load older" adds. */
const PAGE = 100;
/** The most rows the view keeps live (the API's largest page). */
const MOST = 1000;

let ctx = null;
let els = null;
let filters = {};
/** How many of the newest matching executions are shown. */
let shown = PAGE;
let schedules = [];
let detailSeq = 0;

function readFilters(params) {
  return {
    schedule: params.get("schedule") || "",
    handler: params.get("handler") || "",
    status: STATUSES.includes(params.get("status")) ? params.get("status") : "",
    since: params.get("since") || "",
    until: params.get("until") || "",
  };
}

function apiQuery() {
  return query({
    schedule: filters.schedule,
    handler: filters.handler,
    status: filters.status,
    since: instant(filters.since),
    until: instant(filters.until),
    limit: shown,
  });
}

function changed() {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
  ctx.setParams(params);
  shown = PAGE;
  for (const tab of els.tabs.querySelectorAll("button")) {
    tab.setAttribute("aria-pressed", String((tab.dataset.errors === "1") === (filters.status === "error")));
  }
  ctx.refresh();
}

function select(id, label, options, key) {
  const el = h("select", { id, onchange: (e) => {
    filters[key] = e.target.value;
    changed();
  } }, h("option", { value: "" }, "all"), options.map((o) => h("option", { value: o }, o)));
  el.value = filters[key];
  return [h("label", { for: id }, label), el];
}

export default {
  title: "Executions",

  mount(view, context) {
    ctx = context;
    filters = readFilters(ctx.params);
    shown = PAGE;
    els = {
      chart: h("div", { class: "chart-slot compact-chart" }),
      body: h("tbody", {}),
      more: h("button", { type: "button", class: "ghost", hidden: true, onclick: loadMore }, "Load older"),
      limit: h("p", { class: "muted", hidden: true },
        `The newest ${MOST} are shown: narrow the filters or the time range to see older ones.`),
      scheduleSlot: h("span", { class: "filter" }),
      handlerSlot: h("span", { class: "filter" }),
      tabs: h("div", { class: "tabs", role: "group", "aria-label": "View" },
        h("button", { type: "button", dataset: { errors: "0" }, "aria-pressed": String(filters.status !== "error"), onclick: () => {
          filters.status = "";
          els.status.value = "";
          changed();
        } }, "All"),
        h("button", { type: "button", dataset: { errors: "1" }, "aria-pressed": String(filters.status === "error"), onclick: () => {
          filters.status = "error";
          els.status.value = "error";
          changed();
        } }, "Errors")),
    };
    const [statusLabel, status] = select("filter-status", "Status", STATUSES, "status");
    els.status = status;
    const when = (id, label, key) => {
      const input = h("input", { id, type: "datetime-local", step: 1, value: filters[key], onchange: (e) => {
        filters[key] = e.target.value;
        changed();
      } });
      return h("span", { class: "filter" }, h("label", { for: id }, label), input);
    };
    view.append(
      h("div", { class: "page-head" }, h("h1", {}, "Executions"), els.tabs),
      els.chart,
      h("details", { class: "filters-fold", open: window.matchMedia("(min-width: 701px)").matches || Object.values(filters).some(Boolean) },
        h("summary", {}, "Filters"),
        h("form", { class: "filters", "aria-label": "Filters", onsubmit: (e) => e.preventDefault() },
        els.scheduleSlot,
        els.handlerSlot,
        h("span", { class: "filter" }, statusLabel, status),
        when("filter-since", "From", "since"),
        when("filter-until", "To", "until"),
        h("button", { type: "button", class: "ghost", onclick: () => {
          filters = { schedule: "", handler: "", status: "", since: "", until: "" };
          for (const el of view.querySelectorAll(".filters select, .filters input")) el.value = "";
          changed();
        } }, "Clear filters"))),
      h("div", { class: "table-wrap" },
        h("table", { class: "data stack", id: "executions-table" },
          h("caption", { class: "sr-only" }, "Executions, newest first"),
          h("thead", {}, h("tr", {},
            ["Started", "Schedule", "Handler", "Status", "Attempt", "Duration", "Instance", "Node", "Error"]
              .map((c) => h("th", { scope: "col" }, c)))),
          els.body)),
      h("div", { class: "more" }, els.more, els.limit),
    );
    loadChoices();
  },

  async refresh() {
    const [first, timeline] = await Promise.all([
      api(`/api/v1/executions${apiQuery()}`),
      api(`/api/v1/executions/timeline${query({ schedule: filters.schedule, handler: filters.handler })}`),
    ]);
    const buckets = timeline.buckets.map((b) => ({ t: b.start, values: b }));
    const scope = [filters.schedule, filters.handler].filter(Boolean).join(", ");
    update(els.chart, { buckets, scope }, () => bars({
      title: `Last hour, per minute${scope ? ` (${scope})` : ""}`,
      buckets,
      series: OUTCOMES,
      empty: "No executions in the last hour.",
    }));
    if (!els) return;
    rows(els.body, first.executions, row,
      emptyRow(8, filters.status === "error" ? "No errors." : "No executions match."));
    // More exist when the page came back full; past the largest page, filters narrow it down.
    const more = Boolean(first.next);
    els.more.hidden = !more || shown >= MOST;
    els.limit.hidden = !(more && shown >= MOST);
  },

  unmount() {
    els = null;
  },
};

async function loadChoices() {
  try {
    const [s, hs] = await Promise.all([api("/api/v1/schedules?limit=1000"), api("/api/v1/handlers?limit=1000")]);
    if (!els) return;
    schedules = s.schedules;
    const ids = schedules.map((x) => x.id);
    if (filters.schedule && !ids.includes(filters.schedule)) ids.push(filters.schedule);
    fill(els.scheduleSlot, select("filter-schedule", "Schedule", ids, "schedule"));
    const handlers = hs.handlers.map((x) => x.id);
    if (filters.handler && !handlers.includes(filters.handler)) handlers.push(filters.handler);
    fill(els.handlerSlot, select("filter-handler", "Handler", handlers, "handler"));
  } catch (e) {
    ctx.toast(`Cannot list schedules and handlers: ${e.message}`, "error");
  }
}

function loadMore() {
  shown = Math.min(shown + PAGE, MOST);
  ctx.refresh();
}

function row(e) {
  return h("tr", { dataset: { id: e.id, status: e.status }, class: "clickable", onclick: (ev) => {
    if (!ev.target.closest("button")) showDetail(e);
  } },
  h("td", {}, h("button", { type: "button", class: "link", onclick: () => showDetail(e), "aria-label": `Execution ${e.id}, details` }, time(e.started_at))),
  h("td", {}, e.schedule_id),
  h("td", { class: "mono" }, `${e.handler}.${e.method}`),
  h("td", {}, badge(e.status)),
  h("td", { class: "optional" }, `${e.attempt} of ${e.max_attempts}`),
  h("td", {}, millis(e.duration_ms)),
  h("td", { class: "mono optional" }, e.instance || "—"),
  h("td", { class: "mono optional node", title: e.node || "" }, e.node ? e.node.slice(-8) : "—"),
  h("td", { class: "error-cell" }, e.error_code ? h("span", { class: "mono" }, e.error_code) : "", e.error ? ` ${e.error}` : ""));
}

async function showDetail(e) {
  const seq = ++detailSeq;
  const dialog = document.getElementById("detail-dialog");
  const body = document.getElementById("detail-body");
  document.getElementById("detail-title").textContent = `Execution ${e.id}`;
  fill(body, detail(e, null));
  const again = document.getElementById("detail-schedule");
  const schedule = schedules.find((s) => s.id === e.schedule_id);
  again.hidden = !schedule;
  again.onclick = async () => {
    try {
      const started = await api(`/api/v1/schedules/${encodeURIComponent(e.schedule_id)}/run`, { method: "POST" });
      ctx.toast(`A run of ${e.schedule_id} started (${started.run.id}).`);
      dialog.close();
      ctx.refresh();
    } catch (err) {
      ctx.toast(`${e.schedule_id}: ${err.message}`, "error");
    }
  };
  if (!dialog.open) dialog.showModal();
  // A call made at once has no run to show the other attempts of.
  if (e.schedule_id.startsWith("immediate_")) return;
  try {
    const run = await api(`/api/v1/runs/${encodeURIComponent(e.run_id)}`);
    // Another execution may have been opened meanwhile.
    if (seq === detailSeq) fill(body, detail(e, run));
  } catch {
    // The attempt alone is shown.
  }
}

/** What an attempt used outside its instance: hosts contacted, requests, bytes, directories, the fleet view. */
function usageText(u) {
  const parts = [];
  if (u.hosts && u.hosts.length) {
    parts.push(`${u.http_requests} HTTP request${u.http_requests === 1 ? "" : "s"} to ${u.hosts.join(", ")} (${bytes(u.bytes_out)} out, ${bytes(u.bytes_in)} in)`);
  }
  if (u.directories && u.directories.length) parts.push(`directories ${u.directories.map((d) => `/${d}`).join(", ")}`);
  if (u.fleet_requests) {
    const ms = (u.fleet_time_us || 0) / 1000;
    parts.push(`${u.fleet_requests} fleet request${u.fleet_requests === 1 ? "" : "s"} (${ms < 10 ? ms.toFixed(2) : Math.round(ms)} ms)`);
  }
  return parts.join("; ") || "nothing";
}

function detail(e, run) {
  const schedule = schedules.find((s) => s.id === e.schedule_id);
  const item = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
  return [
    h("dl", { class: "facts wide-facts" },
      item("Status", badge(e.status)),
      item("Schedule", schedule
        ? h("a", { href: `#/schedules?id=${encodeURIComponent(e.schedule_id)}`, id: "detail-schedule-link",
          onclick: () => document.getElementById("detail-dialog").close() }, e.schedule_id)
        : h("span", {}, e.schedule_id, h("span", { class: "muted" }, e.schedule_id.startsWith("immediate_") ? " (a call made at once)" : " (deleted)"))),
      item("Handler", h("span", { class: "mono" }, `${e.handler}.${e.method}`)),
      item("Attempt", `${e.attempt} of ${e.max_attempts}`),
      item("Started", `${time(e.started_at)} (${time(e.started_at, "UTC")} UTC)`),
      item("Completed", e.completed_at ? time(e.completed_at) : "—"),
      item("Duration", millis(e.duration_ms)),
      item("Instance", h("span", { class: "mono" }, e.instance || "—")),
      item("Node", h("span", { class: "mono" }, e.node || "—")),
      item("Run", h("span", { class: "mono" }, e.run_id)),
      item("Params", e.params_summary ? h("span", { class: "mono" }, e.params_summary) : h("span", { class: "muted" }, "none")),
      e.usage ? item("Reached", h("span", { id: "detail-usage" }, usageText(e.usage))) : null),
    schedule ? [h("h3", {}, "The schedule's params"), h("pre", { class: "json" }, pretty(schedule.params))] : null,
    e.error || e.error_code
      ? [h("h3", {}, "Error"), h("pre", { class: "json error-block" }, `${e.error_code || ""}${e.error ? `\n${e.error}` : ""}`),
        e.not_retried
          ? h("p", { id: "not-retried" }, h("strong", {}, "Not retried: "), e.not_retried)
          : e.status === "retry" ? h("p", { class: "muted" }, "Retried: another attempt followed.") : null]
      : null,
    e.result !== null && e.result !== undefined ? [h("h3", {}, "Result"), h("pre", { class: "json" }, pretty(e.result))] : null,
    run && run.executions.length > 1
      ? [h("h3", {}, `Attempts of this run (${run.run.status})`),
        h("table", { class: "data compact" },
          h("thead", {}, h("tr", {}, ["Attempt", "Status", "Started", "Duration", "Error"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, run.executions.map((x) => h("tr", {},
            h("td", {}, String(x.attempt)), h("td", {}, badge(x.status)), h("td", {}, time(x.started_at)),
            h("td", {}, millis(x.duration_ms)), h("td", {}, x.error || "")))))]
      : null,
  ];
}
