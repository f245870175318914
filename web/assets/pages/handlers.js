// Handlers: every WebAssembly plugin with its lifecycle state, version, hash, figures and live
// instances; what each plugin's component asks for (outbound HTTP, directories, configuration
// values, secrets) beside what it is granted, with ways to grant and revoke; the service
// catalog (installed components with source, version, digest, signer and verification state;
// install and update from a registry after reviewing what the component is and asks for); every
// remote handler with its address, status, last seen and latency, and a way to forget one that
// went away for good.

import { api } from "../api.js";
import { agoEl, badge, bytes, confirmThen, count, emptyRow, fill, h, micros, millis, rows, time, update } from "../dom.js";

let els = null;
let ctx = null;

export default {
  title: "Handlers",

  mount(view, context) {
    ctx = context;
    els = {
      plugins: h("div", { class: "plugin-grid", id: "plugins" }),
      compiling: h("div", { id: "compiling" }),
      rejected: h("div", {}),
      capabilities: h("div", { id: "capabilities" }),
      catalog: h("div", { id: "catalog" }),
      review: h("div", { id: "catalog-review" }),
      remote: h("tbody", {}),
    };
    view.append(
      h("h1", {}, "Handlers"),
      h("h2", {}, "WebAssembly plugins"),
      els.compiling,
      els.plugins,
      els.rejected,
      h("h2", {}, "Capabilities"),
      h("p", { class: "muted" },
        "What each plugin's component asks for, and what it is granted. A call gets only what is both; a secret is granted by reference (env:NAME or file:PATH) and never shown."),
      els.capabilities,
      h("h2", {}, "Catalog"),
      h("p", { class: "muted" },
        "Components installed from OCI registries: where each came from, its digest, who signed it, and whether the file and its signature still hold. Installing shows what a component is and asks for before anything is placed."),
      els.catalog,
      installForm(),
      els.review,
      h("h2", {}, "Remote handlers"),
      h("div", { class: "table-wrap" },
        h("table", { class: "data stack", id: "remote-table" },
          h("caption", { class: "sr-only" }, "Remote handlers"),
          h("thead", {}, h("tr", {},
            ["Handler", "Address", "Status", "Last seen", "Last round trip", "Calls", "Errors", "Methods", "Actions"]
              .map((c) => h("th", { scope: "col" }, c)))),
          els.remote)),
    );
  },

  async refresh() {
    const [plugins, handlers, catalog] = await Promise.all([
      api("/api/v1/plugins"),
      api("/api/v1/handlers?limit=1000"),
      api("/api/v1/catalog").catch((e) => ({ error: e.message })),
    ]);
    const live = plugins.plugins.filter((p) => p.live_instances > 0);
    const instances = await Promise.all(live.map((p) =>
      api(`/api/v1/plugins/${encodeURIComponent(p.name)}/instances`)
        .then((r) => [p.name, r.instances])
        .catch(() => [p.name, []])));
    const byPlugin = Object.fromEntries(instances);
    // Each plugin's requests and grants come with the list; a plugin's history of changes is
    // asked for when its "Changes" are opened.
    const grants = plugins.plugins
      .filter((p) => p.capabilities && (p.capabilities.requested.length || p.capabilities.unrequested.length))
      .map((p) => ({ plugin: p.name, capabilities: p.capabilities }));
    if (!els) return;
    update(els.capabilities, grants, () => grants.length
      ? grants.map(capabilitiesCard)
      : h("p", { class: "muted" }, "No plugin asks for anything beyond its params."));
    update(els.plugins, { p: plugins.plugins, byPlugin }, () => plugins.plugins.length
      ? plugins.plugins.map((p) => pluginCard(p, byPlugin[p.name] || []))
      : h("p", { class: "muted" }, "No plugins: drop a component (.wasm) into the plugins folder."));
    const compiling = plugins.compiling || [];
    update(els.compiling, compiling, () => compiling.length
      ? h("section", { class: "card", "aria-label": "Plugins compiling" },
        h("h3", {}, "Compiling"),
        h("p", { class: "muted" }, "New or changed files being compiled; calls for them wait until they are ready."),
        h("ul", {}, compiling.map((c) => h("li", {},
          h("span", { class: "mono" }, c.name), " ", badge("compiling"), " since ", agoEl(c.since)))))
      : null);
    update(els.rejected, plugins.rejected, () => plugins.rejected.length
      ? h("section", { class: "card warn", "aria-label": "Rejected plugin files" },
        h("h3", {}, "Rejected files"),
        h("ul", {}, plugins.rejected.map((r) => h("li", {}, h("span", { class: "mono" }, r.file), `: ${r.error}`))))
      : null);
    update(els.catalog, catalog, () => catalogView(catalog));
    const remote = handlers.handlers.filter((x) => x.kind === "remote");
    rows(els.remote, remote, remoteRow,
      emptyRow(9, "No remote handlers have registered."));
  },

  unmount() {
    els = null;
  },
};

/**
 * The state to show: `hot` means instances are kept warm, so a loaded plugin without any (none
 * made yet, or the last one discarded) shows as `loaded`.
 */
export function shownState(state, liveInstances) {
  return state === "hot" && !liveInstances ? "loaded" : state;
}

function pluginCard(p, instances) {
  const sha = p.file?.sha256 || "";
  const state = shownState(p.state, p.live_instances);
  return h("article", { class: "card plugin", dataset: { plugin: p.name, state }, "aria-label": `Plugin ${p.name}` },
    h("header", { class: "plugin-head" },
      h("h3", {}, p.name),
      badge(state),
      h("span", { class: "muted" }, `v${p.version}`)),
    p.description ? h("p", { class: "muted" }, p.description) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "sha256"), h("dd", { class: "mono", title: sha }, sha.slice(0, 16)),
      h("dt", {}, "calls"), h("dd", {}, count(p.calls)),
      h("dt", {}, "errors"), h("dd", {}, count(p.errors?.total ?? 0)),
      h("dt", {}, "cold starts"), h("dd", {}, count(p.cold_starts)),
      h("dt", {}, "cold start p50"), h("dd", {}, p.cold_starts ? micros(p.cold_start_us_p50) : "—"),
      h("dt", {}, "call p50"), h("dd", {}, p.calls ? micros(p.call_us_p50) : "—"),
      h("dt", {}, "memory"), h("dd", {}, bytes(p.memory_bytes)),
      h("dt", {}, "last used"), p.last_used ? agoEl(p.last_used, "dd") : h("dd", {}, "never")),
    p.last_error ? h("p", { class: "error small-text" }, `Last error: ${p.last_error.message ?? JSON.stringify(p.last_error)}`) : null,
    h("div", { class: "table-wrap" },
      h("table", { class: "data compact instances stack" },
        h("caption", {}, `Live instances (${instances.length})`),
        h("thead", {}, h("tr", {},
          ["Instance", "State", "Memory", "Peak", "Calls", "Cold start", "Last used"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, instances.length
          ? instances.map((i) => h("tr", { dataset: { instance: i.id } },
            h("td", { class: "mono", dataset: { label: "Instance" } }, i.id),
            h("td", { dataset: { label: "State" } }, badge(i.state)),
            h("td", { dataset: { label: "Memory" } }, bytes(i.memory_bytes)),
            h("td", { dataset: { label: "Peak" }, class: "optional" }, bytes(i.memory_peak_bytes)),
            h("td", { dataset: { label: "Calls" } }, count(i.calls)),
            h("td", { dataset: { label: "Cold start" }, class: "optional" }, micros(i.cold_start_us)),
            agoEl(i.last_used, "td", { title: time(i.last_used), dataset: { label: "Last used" } })))
          : emptyRow(7, p.state === "cold" ? "Cold: nothing in memory." : "No live instances.")))));
}

/** What to type to grant a request of each kind. */
const GRANT_INPUT = {
  http: { label: "Destination", placeholder: "https://api.example.com" },
  directory: { label: "Host directory", placeholder: "/srv/data" },
  config: { label: "Value", placeholder: "value" },
  secret: { label: "Reference", placeholder: "env:NAME or file:/path" },
};

/** A grant's value as shown: a destination, a path, a value, a secret's reference. */
function grantText(g) {
  switch (g.kind) {
    case "http": return g.destination;
    case "directory": return g.access ? `${g.path} (${g.access})` : g.path;
    case "config": return g.value;
    case "secret": return g.reference;
    case "fleet": return g.call_plugins ? "granted, pings may call plugins" : "granted";
    default: return "";
  }
}

/** The name a grant is revoked by. */
function grantName(g) {
  return g.kind === "http" ? g.destination : g.kind === "directory" ? g.name
    : g.kind === "fleet" ? "fleet" : g.key;
}

function capabilitiesCard(view) {
  const { plugin, capabilities: c } = view;
  const missing = c.requested.filter((r) => !r.granted.length).length;
  return h("section", { class: "card caps", dataset: { plugin }, "aria-label": `Capabilities of ${plugin}` },
    h("header", { class: "plugin-head" },
      h("h3", {}, plugin),
      badge(missing ? "missing" : "granted"),
      h("span", { class: "muted" }, missing ? `${missing} of ${c.requested.length} not granted` : "all granted")),
    h("div", { class: "table-wrap" },
      h("table", { class: "data compact stack" },
        h("caption", { class: "sr-only" }, `What ${plugin} asks for`),
        h("thead", {}, h("tr", {},
          ["Kind", "Asks for", "Why", "Granted", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, c.requested.map((r) => requestRow(plugin, r)),
          c.unrequested.map((g) => h("tr", { class: "unrequested", dataset: { kind: g.kind } },
            h("td", { dataset: { label: "Kind" } }, g.kind),
            h("td", { class: "mono", dataset: { label: "Asks for" } }, grantName(g)),
            h("td", { class: "muted", dataset: { label: "Why" } }, "not requested by this version: gives nothing"),
            h("td", { class: "mono", dataset: { label: "Granted" } }, grantText(g)),
            h("td", { class: "actions-cell" }, revokeButton(plugin, g))))))),
    changesFold(plugin));
}

/** The latest changes to a plugin's grants, read when the fold is opened. */
function changesFold(plugin) {
  const list = h("ul", { class: "small-text changes" }, h("li", { class: "muted" }, "Loading…"));
  const fold = h("details", { class: "filters-fold", ontoggle: async () => {
    if (!fold.open) return;
    try {
      const view = await api(`/api/v1/plugins/${encodeURIComponent(plugin)}/grants`);
      fill(list, view.events.length
        ? view.events.slice(0, 20).map((e) =>
          h("li", {}, `${time(e.at)}: ${e.action} ${e.kind} ${e.name}${e.detail ? ` = ${e.detail}` : ""} by ${e.actor}`))
        : h("li", { class: "muted" }, "No changes recorded."));
    } catch (e) {
      fill(list, h("li", { class: "error" }, e.message));
    }
  } }, h("summary", {}, "Changes"), list);
  return fold;
}

function requestRow(plugin, r) {
  const what = r.access ? `${r.name} (${r.access})` : r.name;
  const granted = r.granted.length
    ? h("td", { class: "mono", dataset: { label: "Granted" } },
      r.granted.map((g) => h("div", {}, grantText(g), " ", revokeButton(plugin, g))))
    : h("td", { dataset: { label: "Granted" } }, badge("missing"));
  return h("tr", { dataset: { kind: r.kind, name: r.name } },
    h("td", { dataset: { label: "Kind" } }, r.kind),
    h("td", { class: "mono", dataset: { label: "Asks for" } }, what),
    h("td", { dataset: { label: "Why" } }, r.purpose),
    granted,
    h("td", { class: "actions-cell" }, grantForm(plugin, r)));
}

/** The fleet view takes no value: a choice whether its pings may call plugins. */
function fleetForm(plugin, r) {
  const calls = h("input", {
    type: "checkbox", name: "call_plugins",
    "aria-label": `Let ${plugin}'s pings call plugins`,
  });
  const onsubmit = async (event) => {
    event.preventDefault();
    try {
      await api(`/api/v1/plugins/${encodeURIComponent(plugin)}/grants`, {
        method: "POST", body: { kind: "fleet", call_plugins: calls.checked },
        headers: { "X-ScheduleZero-Actor": "dashboard" },
      });
      ctx.toast(`${plugin}: ${r.kind} granted.`);
      ctx.refresh();
    } catch (e) {
      ctx.toast(`${plugin}: ${e.message}`, "error");
    }
  };
  return h("form", { class: "grant-form", onsubmit },
    h("label", { class: "small-text" }, calls, " pings call plugins"),
    h("button", { type: "submit", class: "small" }, "Grant"));
}

function grantForm(plugin, r) {
  if (r.kind === "fleet") return fleetForm(plugin, r);
  const input = GRANT_INPUT[r.kind] || GRANT_INPUT.config;
  const field = h("input", {
    type: "text", name: "value", required: true, placeholder: input.placeholder,
    "aria-label": `${input.label} to grant for ${r.kind} ${r.name}`,
  });
  const onsubmit = async (event) => {
    event.preventDefault();
    const value = field.value.trim();
    const body = r.kind === "http" ? { kind: "http", destination: value }
      : r.kind === "directory" ? { kind: "directory", name: r.name, path: value }
        : r.kind === "secret" ? { kind: "secret", key: r.name, reference: value }
          : { kind: "config", key: r.name, value };
    try {
      await api(`/api/v1/plugins/${encodeURIComponent(plugin)}/grants`, {
        method: "POST", body, headers: { "X-ScheduleZero-Actor": "dashboard" },
      });
      ctx.toast(`${plugin}: ${r.kind} ${r.name} granted.`);
      ctx.refresh();
    } catch (e) {
      ctx.toast(`${plugin}: ${e.message}`, "error");
    }
  };
  return h("form", { class: "grant-form", onsubmit },
    field, h("button", { type: "submit", class: "small" }, "Grant"));
}

function revokeButton(plugin, g) {
  const name = grantName(g);
  return h("button", {
    type: "button", class: "small danger", "aria-label": `Revoke ${g.kind} ${name} of ${plugin}`,
    onclick: () => confirmThen({
      title: `Revoke ${g.kind} ${name}?`,
      text: `${plugin}'s next call no longer gets it.`,
      ok: "Revoke",
    }, async () => {
      try {
        const q = new URLSearchParams({ kind: g.kind, name });
        await api(`/api/v1/plugins/${encodeURIComponent(plugin)}/grants?${q}`, {
          method: "DELETE", headers: { "X-ScheduleZero-Actor": "dashboard" },
        });
        ctx.toast(`${plugin}: ${g.kind} ${name} revoked.`);
      } catch (e) {
        ctx.toast(`${plugin}: ${e.message}`, "error");
      }
      ctx.refresh();
    }),
  }, "Revoke");
}

function remoteRow(r) {
  return h("tr", { dataset: { handler: r.id } },
    h("td", { class: "strong" }, r.id),
    h("td", { class: "mono" }, r.address || "—"),
    h("td", {}, badge(r.status)),
    r.last_seen ? agoEl(r.last_seen, "td", { title: time(r.last_seen) }) : h("td", {}, "never"),
    h("td", {}, r.last_latency_ms === null || r.last_latency_ms === undefined ? "—" : millis(r.last_latency_ms)),
    h("td", {}, count(r.calls)),
    h("td", {}, count(r.errors)),
    h("td", { class: "mono" }, (r.methods || []).map((m) => m.name).join(", ")),
    h("td", { class: "actions-cell" }, r.status === "online"
      ? ""
      : h("button", { type: "button", class: "small danger", onclick: () => forget(r), "aria-label": `Forget ${r.id}` }, "Forget")));
}

function forget(r) {
  confirmThen({
    title: `Forget ${r.id}?`,
    text: "It is no longer listed, pinged or called, until it registers again. Schedules that name it stay, and fail until it does.",
    ok: "Forget",
  }, async () => {
    try {
      await api(`/api/v1/handlers/${encodeURIComponent(r.id)}`, { method: "DELETE" });
      ctx.toast(`${r.id} forgotten.`);
    } catch (e) {
      ctx.toast(`${r.id}: ${e.message}`, "error");
    }
    ctx.refresh();
  });
}

/** Whether this dashboard's token may install (the admin token, or a host without tokens). */
let canInstall = false;

function catalogView(c) {
  if (c.error) return h("p", { class: "error" }, `The catalog cannot be read: ${c.error}`);
  canInstall = c.can_install;
  const keys = c.trusted_keys.length
    ? c.trusted_keys.map((k) => `${k.name} (key ${k.key_id.slice(0, 12)}, for ${k.plugins.join(", ")})`).join("; ")
    : "none";
  return h("div", {},
    h("p", { class: "small-text" },
      `Trusted keys: ${keys}. `,
      c.require_signatures
        ? "The plugins folder takes signed components only."
        : "The plugins folder loads unsigned components too (pool.require_signatures is off).",
      c.can_install ? "" : " Installing needs the admin token."),
    h("div", { class: "table-wrap" },
      h("table", { class: "data compact stack", id: "catalog-table" },
        h("caption", { class: "sr-only" }, "Installed components"),
        h("thead", {}, h("tr", {},
          ["Plugin", "Version", "Source", "Digest", "Signer", "State", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, c.installed.length
          ? c.installed.map(installedRow)
          : emptyRow(7, "Nothing installed from a registry yet.")))));
}

function installedRow(row) {
  const e = row.entry;
  const v = row.verification;
  const state = v ? (v.ok ? "verified" : "failing") : "unknown";
  return h("tr", { dataset: { plugin: row.name, state } },
    h("td", { class: "strong", dataset: { label: "Plugin" } }, row.name),
    h("td", { dataset: { label: "Version" } }, e.version,
      row.running && row.running !== e.version ? h("span", { class: "muted" }, ` (running ${row.running})`) : ""),
    h("td", { class: "mono small-text wrap-anywhere", dataset: { label: "Source" }, title: e.pinned || e.source }, e.source),
    h("td", { class: "mono", dataset: { label: "Digest" }, title: e.digest }, e.digest.replace("sha256:", "").slice(0, 12)),
    h("td", { dataset: { label: "Signer" } }, e.signer || h("span", { class: "muted" }, "unsigned")),
    h("td", { dataset: { label: "State" } }, badge(state),
      v && v.problems.length ? h("div", { class: "small-text error" }, v.problems.join("; ")) : ""),
    h("td", { class: "actions-cell" }, canInstall ? [
      h("button", { type: "button", class: "small", onclick: () => checkUpdate(row.name), "aria-label": `Check ${row.name} for an update` }, "Update"),
      (e.previous || []).length
        ? h("button", { type: "button", class: "small", onclick: () => rollback(row.name, e.previous[e.previous.length - 1]), "aria-label": `Roll ${row.name} back` }, "Roll back")
        : "",
      h("button", { type: "button", class: "small danger", onclick: () => removeInstalled(row.name), "aria-label": `Remove ${row.name}` }, "Remove"),
    ] : ""));
}

function installForm() {
  const field = h("input", {
    type: "text", name: "reference", required: true, id: "catalog-reference",
    placeholder: "registry.example.com/vendor/handler:1.0.0",
    "aria-label": "Registry reference to inspect",
  });
  const onsubmit = async (event) => {
    event.preventDefault();
    try {
      const review = await api("/api/v1/catalog/inspect", { method: "POST", body: { reference: field.value.trim() } });
      showReview(review, "Install");
    } catch (e) {
      fill(els.review, h("p", { class: "error" }, e.message));
    }
  };
  return h("form", { class: "grant-form", id: "catalog-inspect", onsubmit },
    field, h("button", { type: "submit", class: "small" }, "Inspect"));
}

async function checkUpdate(name) {
  try {
    const review = await api(`/api/v1/catalog/${encodeURIComponent(name)}/update`);
    showReview(review, `Update to ${review.version}`);
  } catch (e) {
    ctx.toast(`${name}: ${e.message}`, e.code === "nothing_to_do" ? "info" : "error");
  }
}

/** What a component is and asks for, and the button that installs exactly these bytes. */
function showReview(r, action) {
  if (!els) return;
  const caps = r.capabilities || { requested: [], unrequested: [] };
  const sig = r.signature || {};
  const signature = sig.status === "verified" ? `signed by ${sig.key} (key ${sig.key_id})`
    : sig.status === "unsigned" ? "not signed"
      : sig.status === "unknown_signer" ? "signed by a key this host does not trust"
        : sig.status === "not_allowed" ? `signed by ${sig.key}, not trusted for ${sig.plugin}`
          : `bad signature: ${sig.reason || ""}`;
  const install = async () => {
    try {
      const outcome = await api("/api/v1/catalog/install", {
        method: "POST",
        // The tag is recorded as the source (updates look for newer tags); the digest holds the
        // install to the bytes reviewed.
        body: { reference: r.source, digest: r.digest, consent: true },
      });
      ctx.toast(`${outcome.name} ${outcome.installed.version} installed.`);
      fill(els.review);
      ctx.refresh();
    } catch (e) {
      ctx.toast(e.message, "error");
    }
  };
  fill(els.review, h("section", { class: "card caps", id: "review", "aria-label": `Review of ${r.name}` },
    h("header", { class: "plugin-head" },
      h("h3", {}, `${r.name || "(no name)"} ${r.version || ""}`),
      badge(r.problems.length ? "refused" : "ok"),
      r.installed ? h("span", { class: "muted" }, `installed: ${r.installed.version}`) : ""),
    r.description ? h("p", { class: "muted" }, r.description) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "vendor"), h("dd", {}, r.vendor || "—"),
      h("dt", {}, "license"), h("dd", {}, r.license || "—"),
      h("dt", {}, "source"), h("dd", { class: "mono small-text" }, r.pinned || r.source),
      h("dt", {}, "digest"), h("dd", { class: "mono", title: r.digest }, r.digest.replace("sha256:", "").slice(0, 16)),
      h("dt", {}, "size"), h("dd", {}, bytes(r.size)),
      h("dt", {}, "contract"), h("dd", {}, r.world.supported ? `${r.world.contract}: supported` : `not supported: ${r.world.reason}`),
      h("dt", {}, "signature"), h("dd", { id: "review-signature" }, signature)),
    h("h4", {}, "Asks for"),
    caps.requested.length
      ? h("ul", { class: "small-text", id: "review-requests" }, caps.requested.map((q) =>
        h("li", {}, `${q.kind} ${q.name}${q.access ? ` (${q.access})` : ""}: ${q.purpose} — `,
          q.granted.length ? "granted" : badge("missing"))))
      : h("p", { class: "muted" }, "Nothing beyond its params."),
    r.problems.length
      ? h("ul", { class: "error small-text", id: "review-problems" }, r.problems.map((p) => h("li", {}, p)))
      : h("p", {}, h("button", { type: "button", id: "review-install", onclick: install }, action),
        h("span", { class: "muted small-text" }, " installs these bytes only, and grants nothing: grant what it asks for above, once it is installed."))));
}

function rollback(name, previous) {
  confirmThen({
    title: `Roll ${name} back to ${previous.version}?`,
    text: "The version kept before is checked again and put back; calls in flight finish on the current one.",
    ok: "Roll back",
  }, async () => {
    try {
      await api(`/api/v1/catalog/${encodeURIComponent(name)}/rollback`, { method: "POST" });
      ctx.toast(`${name} rolled back to ${previous.version}.`);
    } catch (e) {
      ctx.toast(`${name}: ${e.message}`, "error");
    }
    ctx.refresh();
  });
}

function removeInstalled(name) {
  confirmThen({
    title: `Remove ${name}?`,
    text: "Its file, its lockfile entry and its kept versions go; schedules that name it fail until it is installed again.",
    ok: "Remove",
  }, async () => {
    try {
      await api(`/api/v1/catalog/${encodeURIComponent(name)}`, { method: "DELETE" });
      ctx.toast(`${name} removed.`);
    } catch (e) {
      ctx.toast(`${name}: ${e.message}`, "error");
    }
    ctx.refresh();
  });
}
