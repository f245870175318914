// Schedules: the list with next fire times in the schedule's zone and the viewer's, and the
// actions on each (edit, pause or resume, run now, delete); the form that creates and edits
// them, checking the trigger and the params as they are typed.

import { api, query } from "../api.js";
import { agoEl, badge, confirmThen, emptyRow, fill, h, instant, rows, time, viewerZone } from "../dom.js";
import { problems, skeleton } from "../schema.js";

let ctx = null;
let els = null;
let stateFilter = "";
/** The schedule the address points at (`#/schedules?id=...`), shown highlighted. */
let focusId = "";

export default {
  title: "Schedules",

  mount(view, context) {
    ctx = context;
    stateFilter = ["active", "paused", "completed"].includes(ctx.params.get("state")) ? ctx.params.get("state") : "";
    focusId = ctx.params.get("id") || "";
    const filter = h("select", { id: "schedule-state", onchange: (e) => {
      stateFilter = e.target.value;
      ctx.setParams(new URLSearchParams(stateFilter ? { state: stateFilter } : {}));
      ctx.refresh();
    } },
    h("option", { value: "" }, "all"),
    h("option", { value: "active" }, "active"),
    h("option", { value: "paused" }, "paused"),
    h("option", { value: "completed" }, "completed"));
    filter.value = stateFilter;
    els = { body: h("tbody", {}), count: h("span", { class: "muted" }) };
    view.append(
      h("div", { class: "page-head" },
        h("h1", {}, "Schedules"), els.count,
        h("div", { class: "toolbar" },
          h("label", { for: "schedule-state" }, "Show"), filter,
          h("button", { type: "button", class: "primary", id: "new-schedule", onclick: () => openForm(null) }, "New schedule"))),
      h("div", { class: "table-wrap" },
        h("table", { class: "data stack", id: "schedules-table" },
          h("caption", { class: "sr-only" }, "Schedules"),
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Schedule"),
            h("th", { scope: "col" }, "Trigger"),
            h("th", { scope: "col" }, "Next fire (schedule's zone)"),
            h("th", { scope: "col" }, "Next fire (yours)"),
            h("th", { scope: "col" }, "Last outcome"),
            h("th", { scope: "col" }, "State"),
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
          els.body)),
    );
  },

  async refresh() {
    const state = stateFilter || undefined;
    const list = await api(`/api/v1/schedules${query({ state, limit: 1000 })}`);
    if (!els) return;
    rows(els.body, list.schedules, row,
      emptyRow(7, stateFilter ? `No ${stateFilter} schedules.` : "No schedules yet: create one with “New schedule”."));
    els.count.textContent = `${list.schedules.length}${list.next ? "+" : ""} shown`;
    const focused = focusId && els.body.querySelector(`tr[data-id="${CSS.escape(focusId)}"]`);
    if (focused && !focused.classList.contains("focus")) {
      focused.classList.add("focus");
      focused.scrollIntoView({ block: "center" });
    }
  },

  unmount() {
    els = null;
  },
};

function row(s) {
  const last = s.last_run;
  return h("tr", { dataset: { id: s.id } },
    h("td", {},
      h("div", { class: "strong" }, s.id),
      h("div", { class: "muted mono" }, `${s.handler}.${s.method}`)),
    h("td", {},
      h("div", {}, s.trigger_description),
      h("div", { class: "muted mono small-text" }, s.trigger_text)),
    h("td", { class: "next-fire" }, nextFire(s, true)),
    h("td", { class: "next-fire optional" }, nextFire(s, false)),
    h("td", {}, last
      ? [badge(last.status), agoEl(last.fire_time, "div", { class: "muted" })]
      : h("span", { class: "muted" }, "never run")),
    h("td", {}, badge(s.state),
      s.runnable === false && s.state === "active"
        ? h("div", { class: "error small-text unrunnable", title: "No live host has this handler: its fire times wait, and are judged by its misfire policy once one has." }, "no host can run it")
        : null),
    h("td", { class: "actions-cell" },
      h("button", { type: "button", class: "small", onclick: () => openForm(s), "aria-label": `Edit ${s.id}` }, "Edit"),
      s.paused
        ? h("button", { type: "button", class: "small", onclick: () => act(s, "resume"), "aria-label": `Resume ${s.id}` }, "Resume")
        : h("button", { type: "button", class: "small", onclick: () => act(s, "pause"), "aria-label": `Pause ${s.id}` }, "Pause"),
      h("button", { type: "button", class: "small", onclick: () => act(s, "run"), "aria-label": `Run ${s.id} now` }, "Run now"),
      h("button", { type: "button", class: "small danger", onclick: () => remove(s), "aria-label": `Delete ${s.id}` }, "Delete")));
}

/** When it fires next: nothing while paused (it does not fire), nor once finished. */
function nextFire(s, inItsZone) {
  if (s.paused) return h("span", { class: "muted" }, "paused");
  if (!s.next_fire_time) return h("span", { class: "muted" }, inItsZone ? "none (finished)" : "—");
  return inItsZone
    ? [h("div", {}, time(s.next_fire_time, s.timezone)), h("div", { class: "muted" }, s.timezone)]
    : [h("div", {}, time(s.next_fire_time)), agoEl(s.next_fire_time, "div", { class: "muted" })];
}

async function act(s, action) {
  const done = { pause: "paused", resume: "resumed", run: "started" };
  try {
    await api(`/api/v1/schedules/${encodeURIComponent(s.id)}/${action}`, { method: "POST" });
    ctx.toast(action === "run" ? `A run of ${s.id} started.` : `${s.id} ${done[action]}.`);
  } catch (e) {
    ctx.toast(`${s.id}: ${e.message}`, "error");
  }
  ctx.refresh();
}

function remove(s) {
  confirmThen({
    title: `Delete ${s.id}?`,
    text: "The schedule stops firing and is removed. Its execution records stay in the log.",
    ok: "Delete",
  }, async () => {
    try {
      await api(`/api/v1/schedules/${encodeURIComponent(s.id)}`, { method: "DELETE" });
      ctx.toast(`${s.id} deleted.`);
    } catch (e) {
      ctx.toast(`${s.id}: ${e.message}`, "error");
    }
    ctx.refresh();
  });
}

// --- the form -----------------------------------------------------------------------------

const UNITS = { weeks: 604800, days: 86400, hours: 3600, minutes: 60, seconds: 1 };

const $ = (id) => document.getElementById(id);
let editing = null;
let originalTrigger = null;
let handlerList = [];
let checkTimer = 0;
let checkSeq = 0;
let lastCheck = { key: "", valid: false };

function kind() {
  return document.querySelector("#schedule-form input[name=kind]:checked").value;
}

function showKind() {
  const k = kind();
  for (const fs of document.querySelectorAll("#schedule-form fieldset.trigger")) {
    fs.hidden = fs.dataset.kind !== k;
  }
}

/** The trigger as the API takes it, or null with what is missing. */
function trigger() {
  const k = kind();
  if (k === "cron") {
    const expression = $("f-cron").value.trim();
    if (!expression) return { missing: "Enter a cron expression." };
    const timezone = $("f-tz").value.trim() || "UTC";
    return { value: { type: "cron", expression, timezone } };
  }
  if (k === "interval") {
    const every = Number($("f-every").value);
    if (!$("f-every").value || !(every > 0)) return { missing: "Enter how often, a number above 0." };
    return { value: { type: "interval", [$("f-unit").value]: every } };
  }
  const local = $("f-date").value;
  if (!local) return { missing: "Pick the date and time." };
  const runDate = instant(local);
  if (!runDate) return { missing: "That date is not valid." };
  return { value: { type: "date", run_date: runDate } };
}

/** The chosen method's params schema, when its handler publishes one. */
function methodSchema() {
  const handler = handlerList.find((x) => x.id === $("f-handler").value);
  return handler?.methods.find((m) => m.name === $("f-method").value)?.params_schema || null;
}

/** The last skeleton put in the params box: replaced when the method changes, unless edited. */
let lastSkeleton = "{}";

function offerSkeleton(force) {
  const box = $("f-params");
  const untouched = ["", "{}", lastSkeleton].includes(box.value.trim());
  const schema = methodSchema();
  $("f-params-skeleton").hidden = !schema;
  if (!schema || (!force && !untouched)) return;
  lastSkeleton = JSON.stringify(skeleton(schema), null, 2);
  box.value = lastSkeleton;
  checkParams();
}

function params() {
  const text = $("f-params").value.trim();
  if (!text) return { value: {} };
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    return { error: `Params are not valid JSON: ${e.message}` };
  }
}

function checkParams() {
  const p = params();
  const el = $("f-params-error");
  const schema = methodSchema();
  const why = p.error || (schema ? problems(schema, p.value).slice(0, 3).join("; ") : "");
  el.hidden = !why;
  el.textContent = why ? (p.error ? why : `The method's schema says: ${why}`) : "";
  $("f-params").setAttribute("aria-invalid", why ? "true" : "false");
  return !why;
}

function schedulePreview() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(checkTrigger, 250);
}

/** Asks the host whether the trigger is valid and when it fires; shows the answer. */
async function checkTrigger() {
  clearTimeout(checkTimer);
  const t = trigger();
  const state = $("f-preview-state");
  const table = $("f-preview-table");
  const input = kind() === "cron" ? $("f-cron") : kind() === "interval" ? $("f-every") : $("f-date");
  for (const id of ["f-cron", "f-every", "f-date"]) {
    if ($(id) !== input) $(id).removeAttribute("aria-invalid");
  }
  if (!t.value) {
    lastCheck = { key: "", valid: false, message: t.missing };
    state.textContent = t.missing;
    state.className = "muted";
    table.hidden = true;
    return lastCheck;
  }
  const key = JSON.stringify(t.value);
  if (lastCheck.key === key && lastCheck.done) return lastCheck;
  const seq = ++checkSeq;
  let answer;
  try {
    answer = await api("/api/v1/triggers/check", { method: "POST", body: { trigger: t.value, count: 5 } });
  } catch (e) {
    answer = { valid: false, error: { code: e.code, message: e.message } };
  }
  if (seq !== checkSeq) return lastCheck;
  if (!answer.valid) {
    lastCheck = { key, valid: false, done: true, message: answer.error.message };
    state.textContent = `${answer.error.message} (${answer.error.code})`;
    state.className = "error";
    input.setAttribute("aria-invalid", "true");
    table.hidden = true;
    return lastCheck;
  }
  lastCheck = { key, valid: true, done: true };
  input.setAttribute("aria-invalid", "false");
  if (!answer.fire_times.length) {
    state.textContent = "Valid, but it never fires again.";
    state.className = "muted";
    table.hidden = true;
    return lastCheck;
  }
  state.textContent = `${answer.trigger_text} · ${answer.timezone}`;
  state.className = "muted mono";
  fill(table.tBodies[0], answer.fire_times.map((t) =>
    h("tr", {}, h("td", {}, time(t, answer.timezone)), h("td", {}, time(t)))));
  table.hidden = false;
  return lastCheck;
}

function fillMethods(selected) {
  const handler = handlerList.find((x) => x.id === $("f-handler").value);
  const methods = handler ? handler.methods : [];
  fill($("f-method"), methods.map((m) => h("option", { value: m.name }, m.name)));
  if (selected && methods.some((m) => m.name === selected)) $("f-method").value = selected;
  showMethodHint();
  if (!editing) offerSkeleton(false);
  checkParams();
}

function showMethodHint() {
  const handler = handlerList.find((x) => x.id === $("f-handler").value);
  const method = handler?.methods.find((m) => m.name === $("f-method").value);
  $("f-method-hint").textContent = method?.description || "";
}

function localInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function setKind(k) {
  for (const r of document.querySelectorAll("#schedule-form input[name=kind]")) r.checked = r.value === k;
  showKind();
}

let formReady = false;

function prepareForm() {
  if (formReady) return;
  formReady = true;
  const zones = (Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : []).filter((z) => z !== "UTC");
  fill($("f-tz-list"), ["UTC", ...zones].map((z) => h("option", { value: z })));
  $("f-date-zone").textContent = `(your time, ${viewerZone})`;
  const form = $("schedule-form");
  for (const r of form.querySelectorAll("input[name=kind]")) {
    r.addEventListener("change", () => {
      showKind();
      checkTrigger();
    });
  }
  for (const id of ["f-cron", "f-tz", "f-every", "f-unit", "f-date"]) {
    $(id).addEventListener("input", schedulePreview);
    $(id).addEventListener("change", schedulePreview);
  }
  $("f-params").addEventListener("input", checkParams);
  $("f-handler").addEventListener("change", () => fillMethods(null));
  $("f-method").addEventListener("change", () => {
    showMethodHint();
    if (!editing) offerSkeleton(false);
    checkParams();
  });
  $("f-params-skeleton").addEventListener("click", () => offerSkeleton(true));
  form.addEventListener("submit", submit);
  // What the last submit said no longer holds once the form changes.
  form.addEventListener("input", () => {
    $("f-error").hidden = true;
  });
}

async function openForm(s) {
  prepareForm();
  editing = s;
  const form = $("schedule-form");
  form.reset();
  $("f-error").hidden = true;
  $("f-params-error").hidden = true;
  lastCheck = { key: "", valid: false };
  lastSkeleton = "{}";
  $("schedule-title").textContent = s ? `Edit ${s.id}` : "New schedule";
  $("f-submit").textContent = s ? "Save changes" : "Create schedule";
  $("f-id").disabled = Boolean(s);
  $("f-paused").closest(".field").hidden = Boolean(s);
  try {
    handlerList = (await api("/api/v1/handlers?limit=1000")).handlers;
  } catch (e) {
    ctx.toast(`Cannot list handlers: ${e.message}`, "error");
    return;
  }
  fill($("f-handler"), handlerList.map((x) => h("option", { value: x.id },
    `${x.id} (${x.kind}${x.status && !["available", "online"].includes(x.status) ? `, ${x.status}` : ""})`)));
  if (s) {
    $("f-id").value = s.id;
    if (!handlerList.some((x) => x.id === s.handler)) {
      $("f-handler").append(h("option", { value: s.handler }, `${s.handler} (unknown)`));
    }
    $("f-handler").value = s.handler;
    fillMethods(s.method);
    const t = s.trigger || {};
    if (t.type === "interval") {
      setKind("interval");
      const secs = Number(t.every_seconds) || 0;
      const unit = Object.entries(UNITS).find(([, n]) => secs >= n && secs % n === 0)?.[0] || "seconds";
      $("f-unit").value = unit;
      $("f-every").value = String(secs / UNITS[unit]);
    } else if (t.type === "date") {
      setKind("date");
      $("f-date").value = localInput(t.run_date);
    } else {
      setKind("cron");
      $("f-cron").value = t.expression || "";
      $("f-tz").value = t.timezone || s.timezone || "UTC";
    }
    $("f-params").value = JSON.stringify(s.params ?? {}, null, 2);
    const p = s.policy || {};
    $("f-attempts").value = p.max_attempts ?? "";
    $("f-backoff").value = p.retry_backoff ?? "";
    $("f-timeout").value = p.timeout ?? "";
    $("f-running").value = p.max_running ?? "";
    $("f-grace").value = p.misfire_grace_time ?? "";
  } else {
    fillMethods(null);
    setKind("cron");
    $("f-tz").value = viewerZone;
    $("f-params").value = "{}";
  }
  // An edit that leaves the trigger as it was does not send it: a trigger sent anew would lose
  // what the form does not show (an interval's phase, start and end times).
  originalTrigger = s ? JSON.stringify(trigger().value ?? null) : null;
  $("schedule-dialog").showModal();
  checkTrigger();
}

function policy() {
  const p = {};
  const int = (id, key) => {
    const v = $(id).value.trim();
    if (v) p[key] = Number(v);
  };
  const text = (id, key) => {
    const v = $(id).value.trim();
    if (v) p[key] = v;
  };
  int("f-attempts", "max_attempts");
  int("f-running", "max_running");
  text("f-backoff", "retry_backoff");
  text("f-timeout", "timeout");
  text("f-grace", "misfire_grace_time");
  // An edit that empties an optional setting removes it (back to the default).
  if (editing) {
    for (const [id, key] of [["f-timeout", "timeout"], ["f-grace", "misfire_grace_time"]]) {
      if (!$(id).value.trim() && editing.policy?.[key] != null) p[key] = null;
    }
  }
  return p;
}

async function submit(event) {
  event.preventDefault();
  const error = $("f-error");
  error.hidden = true;
  const paramsOk = checkParams();
  const check = await checkTrigger();
  const wrong = [];
  if (!$("f-handler").value) wrong.push("Pick a handler.");
  if (!$("f-method").value) wrong.push("Pick a method.");
  if (!check.valid) wrong.push(check.message || "The trigger is not valid.");
  if (!paramsOk) wrong.push($("f-params-error").textContent || "The params are not valid.");
  if (wrong.length) {
    error.textContent = wrong.join(" ");
    error.hidden = false;
    return;
  }
  const body = {
    handler: $("f-handler").value,
    method: $("f-method").value,
    params: params().value,
    trigger: trigger().value,
  };
  if (editing && JSON.stringify(body.trigger) === originalTrigger) delete body.trigger;
  const pol = policy();
  if (Object.keys(pol).length) body.policy = pol;
  const submitButton = $("f-submit");
  submitButton.disabled = true;
  try {
    if (editing) {
      await api(`/api/v1/schedules/${encodeURIComponent(editing.id)}`, { method: "PATCH", body });
      ctx.toast(`${editing.id} saved.`);
    } else {
      const id = $("f-id").value.trim();
      if (id) body.id = id;
      if ($("f-paused").checked) body.paused = true;
      const created = await api("/api/v1/schedules", { method: "POST", body });
      ctx.toast(`${created.id} created.`);
    }
    $("schedule-dialog").close();
    ctx.refresh();
  } catch (e) {
    error.textContent = `${e.message}${e.code ? ` (${e.code})` : ""}`;
    error.hidden = false;
  } finally {
    submitButton.disabled = false;
  }
}
