// Calls to the host's API on this origin, with the API token when one is kept. Every call
// reports whether the host answered, so the header can show the connection state.

const TOKEN_KEY = "schedulezero.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const listeners = new Set();

/** Calls `fn(state, detail)` on every outcome: "online", "offline", "unauthorized". */
export function onConnection(fn) {
  listeners.add(fn);
}

function report(state, detail) {
  for (const fn of listeners) fn(state, detail);
}

export function token() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(value) {
  try {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage may be disabled; the token then lasts as long as the page.
  }
  memoryToken = value || "";
}

let memoryToken = "";

/**
 * `GET` (or `method`) `path`, JSON in and out. Throws ApiError: status 0 when the host does not
 * answer, the host's status and stable error code otherwise.
 */
export async function api(path, { method = "GET", body, signal, headers: extra = {} } = {}) {
  const headers = { Accept: "application/json", ...extra };
  const t = token() || memoryToken;
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    report("offline", e);
    throw new ApiError(0, "unreachable", "The host does not answer.");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  const error = data && data.error && typeof data.error === "object" ? data.error : null;
  if (response.status === 401) {
    report("unauthorized", error);
    throw new ApiError(401, "unauthorized", error?.message || "This host needs an API token.");
  }
  report("online");
  if (!response.ok) {
    throw new ApiError(
      response.status,
      String(error?.code ?? `http_${response.status}`),
      error?.message || response.statusText || "The request failed.",
    );
  }
  return data;
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
