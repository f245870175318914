// The dashboard's shell: pages by the address's hash, a poll that refreshes the page on view,
// the connection state in the header, and the API token when the host needs one.

import { ApiError, api, onConnection, setToken, token } from "./api.js";
import { h, refreshAgo, time } from "./dom.js";
import overview from "./pages/overview.js";
import schedules from "./pages/schedules.js";
import handlers from "./pages/handlers.js";
import executions from "./pages/executions.js";
import fleet from "./pages/fleet.js";

/** How often the page on view is refreshed while the tab is visible. */
const POLL_MS = 3000;
/** How long to wait before trying again when the host does not answer. */
const RETRY_MS = 5000;

const PAGES = { overview, schedules, handlers, executions, fleet };

const view = document.getElementById("view");
const conn = document.getElementById("conn");
const connText = document.getElementById("conn-text");
const connTime = document.getElementById("conn-time");
const toastEl = document.getElementById("toast");
const tokenDialog = document.getElementById("token-dialog");

let current = null;
let currentName = "";
let timer = 0;
let inFlight = false;
let needsToken = false;
let lastOk = null;
let toastTimer = 0;

/**
 * Shows the connection's state. The words are a live region, announced when the state changes;
 * the time of the last update beside them changes on every poll and is not announced.
 */
function setConnection(state, text) {
  if (conn.dataset.state !== state || connText.textContent !== text) {
    conn.dataset.state = state;
    connText.textContent = text;
  }
  connTime.textContent = lastOk
    ? `${state === "online" ? "updated" : "last update"} ${time(lastOk, undefined, "short")}`
    : "";
}

onConnection((state) => {
  if (state === "online") {
    lastOk = new Date();
    needsToken = false;
    setConnection("online", "Live");
  } else if (state === "offline") {
    setConnection("offline", "Reconnecting…");
  } else if (state === "unauthorized") {
    needsToken = true;
    setConnection("unauthorized", "API token needed");
    askToken(token() ? "The API token was refused. Enter the current one." : null);
  }
});

/** A short message at the bottom of the screen. */
export function toast(message, kind = "info") {
  toastEl.textContent = message;
  toastEl.dataset.kind = kind;
  // Errors interrupt; news waits its turn.
  toastEl.setAttribute("role", kind === "error" ? "alert" : "status");
  toastEl.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    toastEl.hidden = true;
  }, kind === "error" ? 8000 : 4000);
}

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = hash.split("?");
  const name = PAGES[path] ? path : "overview";
  return { name, params: new URLSearchParams(search) };
}

const ctx = {
  toast,
  /** Refreshes the page now (after an action). */
  refresh: () => poll(true),
  /** Sets the page's query without reloading it. */
  setParams(params) {
    const q = params.toString();
    history.replaceState(null, "", `#/${currentName}${q ? `?${q}` : ""}`);
  },
};

function mount(event) {
  const { name, params } = route();
  if (current && current.unmount) current.unmount();
  currentName = name;
  current = PAGES[name];
  for (const a of document.querySelectorAll(".nav a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${current.title} · ScheduleZero`;
  view.replaceChildren();
  current.mount(view, { ...ctx, params });
  // A page opened from the navigation takes the focus, so keyboard and screen reader users
  // land on it; the first page of a visit leaves the focus where the browser put it.
  if (event) view.focus();
  poll(true);
}

async function poll(now = false) {
  clearTimeout(timer);
  if (!now && document.visibilityState === "hidden") return;
  if (needsToken || !current) return;
  if (inFlight) {
    timer = setTimeout(() => poll(), 250);
    return;
  }
  inFlight = true;
  const page = current;
  let wait = POLL_MS;
  try {
    await page.refresh();
    if (page === current) {
      showPageError(null);
      refreshAgo(view);
    }
  } catch (e) {
    if (!(e instanceof ApiError)) {
      // A bug of the page, not an answer of the host: say it where the tests look.
      console.error(e);
    }
    if (e && e.status === 0) wait = RETRY_MS;
    else if (e && e.status !== 401 && page === current) showPageError(e);
  } finally {
    inFlight = false;
  }
  if (!needsToken && document.visibilityState !== "hidden") {
    timer = setTimeout(() => poll(), wait);
  }
}

function showPageError(e) {
  let banner = view.querySelector(":scope > .page-error");
  if (!e) {
    if (banner) banner.remove();
    return;
  }
  if (!banner) {
    banner = document.createElement("p");
    banner.className = "page-error";
    banner.setAttribute("role", "alert");
    view.prepend(banner);
  }
  banner.textContent = `Could not load this page: ${e.message}${e.code ? ` (${e.code})` : ""}`;
}

function askToken(why) {
  if (!current) {
    view.replaceChildren(h("section", { class: "card" },
      h("h1", {}, "API token needed"),
      h("p", {}, "This host needs an API token before it shows anything."),
      h("button", { type: "button", class: "primary", onclick: () => askToken(null) }, "Enter the token")));
  }
  const whyEl = document.getElementById("token-why");
  whyEl.textContent = why || "This host needs an API token. It is kept in this browser only.";
  document.getElementById("token-error").hidden = true;
  const input = document.getElementById("token-input");
  input.value = "";
  if (!tokenDialog.open) tokenDialog.showModal();
  input.focus();
}

document.getElementById("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = document.getElementById("token-input").value.trim();
  const error = document.getElementById("token-error");
  if (!value) {
    error.textContent = "Enter the token.";
    error.hidden = false;
    return;
  }
  setToken(value);
  needsToken = false;
  try {
    await api("/api/v1/host").then(showHost);
    tokenDialog.close();
    mount();
  } catch (e) {
    if (e.status === 401) {
      // The 401 reopened the dialog; say why there.
      error.textContent = "That token is not valid for this host.";
      error.hidden = false;
    } else {
      tokenDialog.close();
      toast(e.message, "error");
    }
  }
});

document.getElementById("token-forget").addEventListener("click", () => {
  setToken("");
  document.getElementById("token-input").value = "";
  toast("The token is forgotten in this browser.");
});

document.getElementById("token-button").addEventListener("click", () => askToken(null));

// Any [data-close] button closes its dialog.
document.addEventListener("click", (event) => {
  const close = event.target.closest("[data-close]");
  if (close) close.closest("dialog")?.close();
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") poll(true);
});

window.addEventListener("hashchange", mount);

function showHost(host) {
  const el = document.getElementById("host-name");
  el.textContent = host ? `${host.name} · v${host.version}` : "";
}

async function start() {
  let health = null;
  try {
    health = await api("/api/v1/health");
  } catch (e) {
    if (e.status === 0) {
      setTimeout(start, RETRY_MS);
      return;
    }
  }
  if (health && health.auth === "token" && !token()) {
    needsToken = true;
    setConnection("unauthorized", "API token needed");
    askToken(null);
    return;
  }
  try {
    showHost(await api("/api/v1/host"));
  } catch {
    // The connection state says why; the page shows what it can.
  }
  if (!needsToken) mount();
}

start();
