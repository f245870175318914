// Write ScheduleZero handlers in JavaScript.
//
// A handler is a set of methods that take JSON params and return JSON results. Build it into a
// WebAssembly component with `node sdk/js/build.mjs DIR`; the host runs it sandboxed, on a
// schedule or on demand, exactly like a handler written in Rust or Python.
//
//   import { handler, method, p, config, log, InvalidParams, Setting } from "@schedulezero/sdk";
//
//   export default handler({
//     name: "greeter", version: "0.1.0", description: "Greets people.",
//     config: [Setting("greeting", "The word to greet with.")],
//     state: () => ({ calls: 0 }),           // one per instance, kept while it is hot
//     methods: {
//       greet: method("Greets someone, `times` times.",
//         { name: p.string("Whom to greet."), times: p.integer("1 to 10.").default(1) },
//         function (ctx, { name, times }) {
//           if (times < 1 || times > 10) throw new InvalidParams("`times` is 1 to 10");
//           this.calls += 1;
//           const word = config.get("greeting") ?? "Hello";
//           return { message: Array(times).fill(`${word}, ${name}!`).join(" "), runId: ctx.runId };
//         }),
//     },
//   });
//
// A method may be `async` (to await `fetch`, for one): the engine runs its event loop until the
// promise settles.
//
// A method's params are declared with the `p` builders: each is a property of the params object
// (required unless `.optional()` or `.default(v)`); the JSON Schema `describe` publishes is made
// from them and params are checked against them before the method runs. `p.any()` in place of
// the object hands over the params as they came. Throw `InvalidParams`, `Failed`, `Retryable` or
// `Denied` to fail a call with that kind; any other exception fails it with its stack.

// -------------------------------------------------------------------------------------------
// Errors

/** A call's failure of a kind the host knows. Throw one of its subclasses. */
export class HandlerError extends Error {
  get kind() {
    return "failed";
  }
}
/** The params are not valid for the method: retrying the same call cannot succeed. */
export class InvalidParams extends HandlerError {
  get kind() {
    return "invalid-params";
  }
}
/** The handler has no method of that name (the SDK throws it). */
export class UnknownMethod extends HandlerError {
  get kind() {
    return "unknown-method";
  }
}
/** The call failed; the host does not retry it. */
export class Failed extends HandlerError {}
/** The call failed for a reason that may pass; the job's retry policy may run it again. */
export class Retryable extends HandlerError {
  get kind() {
    return "retryable";
  }
}
/** The call needed something the operator did not grant (it fails with `capability_denied`). */
export class Denied extends HandlerError {
  get kind() {
    return "denied";
  }
}

// -------------------------------------------------------------------------------------------
// What a handler asks the operator for (written into the component's manifest)

/** A configuration value the handler reads with `config.get(key)`. */
export const Setting = (key, description) => ({ key, description, secret: false });
/** A secret the handler reads with `config.secret(key)`, granted by reference, never shown. */
export const Secret = (key, description) => ({ key, description, secret: true });
/** Outbound HTTP (`fetch`) to the destinations of one allow-list entry. */
export const Http = (destination, purpose) => ({ destination, purpose });
/** A directory the handler uses, appearing to it as `/<name>` when granted. */
export const Directory = {
  readOnly: (name, purpose) => ({ name, access: "read-only", purpose }),
  readWrite: (name, purpose) => ({ name, access: "read-write", purpose }),
};

// -------------------------------------------------------------------------------------------
// The host's services. Inside a component they are the contract's imports (the build's glue
// connects them); run natively (tests, the build) they are the values `testing.configure` sets.

const native = { values: new Map(), records: [] };
let host = {
  get: (key) => native.values.get(key),
  keys: () => [...native.values.keys()].sort(),
  log: (level, message) => native.records.push([level, message]),
};

/** Configuration values and secrets the operator granted this handler. */
export const config = {
  /** The value of `key`, or undefined when the operator did not set it. */
  get: (key) => host.get(key) ?? undefined,
  /** The keys the operator set for this handler, sorted. */
  keys: () => host.keys(),
  /** The secret `key`; throws `Denied` when it was not granted. */
  secret(key) {
    const v = host.get(key);
    if (v === undefined || v === null) throw new Denied(`secret \`${key}\` is not granted`);
    return v;
  },
  /** The configuration value `key`; throws `Denied` when the operator did not set it. */
  require(key) {
    const v = host.get(key);
    if (v === undefined || v === null) throw new Denied(`configuration value \`${key}\` is not granted`);
    return v;
  },
};

/** Records in the host's log, tagged with the handler, the job and the run (as is `console`). */
export const log = {
  trace: (m) => host.log("trace", String(m)),
  debug: (m) => host.log("debug", String(m)),
  info: (m) => host.log("info", String(m)),
  warn: (m) => host.log("warn", String(m)),
  error: (m) => host.log("error", String(m)),
};

// -------------------------------------------------------------------------------------------
// Params

class ParamsError extends Error {}

const show = (v) => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length <= 40 ? text : `${text.slice(0, 37)}...`;
};
const at = (where) => (where ? `${where}: ` : "");
const join = (where, name) => (where ? `${where}.${name}` : name);

/** One parameter (or value inside one): its JSON Schema and its check. */
export class Param {
  constructor(schema, check) {
    this.schema = schema;
    this.check = check;
    this.required = true;
    this.fallback = undefined;
  }
  #copy(change) {
    const next = new Param({ ...this.schema }, this.check);
    next.required = this.required;
    next.fallback = this.fallback;
    change(next);
    return next;
  }
  /** Not required; absent or null, the method gets undefined. */
  optional() {
    return this.#copy((n) => {
      n.required = false;
    });
  }
  /** Not required; absent or null, the method gets `value`. */
  default(value) {
    return this.#copy((n) => {
      n.required = false;
      n.fallback = value;
      n.schema.default = value;
    });
  }
}

const described = (schema, description) => (description ? { ...schema, description } : schema);

function bounded(kind, description, bounds, test) {
  const schema = described({ type: kind }, description);
  if (bounds?.min !== undefined) schema.minimum = bounds.min;
  if (bounds?.max !== undefined) schema.maximum = bounds.max;
  return new Param(schema, (v, where) => {
    if (!test(v)) throw new ParamsError(`${at(where)}expected ${kind === "integer" ? "an integer" : "a number"}, got ${show(v)}`);
    if (bounds?.min !== undefined && v < bounds.min) throw new ParamsError(`${at(where)}must be at least ${bounds.min}, got ${v}`);
    if (bounds?.max !== undefined && v > bounds.max) throw new ParamsError(`${at(where)}must be at most ${bounds.max}, got ${v}`);
    return v;
  });
}

function checkObject(props, v, where) {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new ParamsError(`${at(where)}expected an object, got ${show(v)}`);
  }
  const names = Object.keys(props);
  const unknown = Object.keys(v).filter((k) => !names.includes(k)).sort();
  if (unknown.length) {
    throw new ParamsError(`${at(where)}unknown field \`${unknown[0]}\` (expected: ${names.sort().join(", ") || "none"})`);
  }
  const out = {};
  for (const [name, param] of Object.entries(props)) {
    const value = v[name];
    if (value === undefined || (value === null && !param.required)) {
      if (param.required) throw new ParamsError(`${at(where)}missing field \`${name}\``);
      out[name] = param.fallback;
      continue;
    }
    out[name] = param.check(value, join(where, name));
  }
  return out;
}

function objectSchema(props, description) {
  const required = Object.entries(props).filter(([, p]) => p.required).map(([n]) => n).sort();
  const schema = {
    type: "object",
    properties: Object.fromEntries(Object.entries(props).map(([n, p]) => [n, p.schema])),
    additionalProperties: false,
  };
  if (required.length) schema.required = required;
  return described(schema, description);
}

/** Parameter builders: each gives a `Param` with its JSON Schema and its check. */
export const p = {
  string: (description) =>
    new Param(described({ type: "string" }, description), (v, where) => {
      if (typeof v !== "string") throw new ParamsError(`${at(where)}expected a string, got ${show(v)}`);
      return v;
    }),
  integer: (description, bounds) => bounded("integer", description, bounds, (v) => Number.isInteger(v)),
  number: (description, bounds) => bounded("number", description, bounds, (v) => typeof v === "number" && Number.isFinite(v)),
  boolean: (description) =>
    new Param(described({ type: "boolean" }, description), (v, where) => {
      if (typeof v !== "boolean") throw new ParamsError(`${at(where)}expected a boolean, got ${show(v)}`);
      return v;
    }),
  /** One of the given values. */
  oneOf: (values, description) =>
    new Param(described({ enum: [...values] }, description), (v, where) => {
      if (!values.includes(v)) throw new ParamsError(`${at(where)}expected one of ${show(values)}, got ${show(v)}`);
      return v;
    }),
  array: (item, description) =>
    new Param(described({ type: "array", items: item.schema }, description), (v, where) => {
      if (!Array.isArray(v)) throw new ParamsError(`${at(where)}expected an array, got ${show(v)}`);
      return v.map((x, i) => item.check(x, `${where}[${i}]`));
    }),
  /** An object with these properties (and no others). */
  object: (props, description) => new Param(objectSchema(props, description), (v, where) => checkObject(props, v, where)),
  /** An object of any keys whose values are all `value`. */
  record: (value, description) =>
    new Param(described({ type: "object", additionalProperties: value.schema }, description), (v, where) => {
      if (v === null || typeof v !== "object" || Array.isArray(v)) throw new ParamsError(`${at(where)}expected an object, got ${show(v)}`);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, value.check(x, join(where, k))]));
    }),
  /** Any JSON value, unchecked. */
  any: (description) => new Param(described({}, description), (v) => v),
};

// -------------------------------------------------------------------------------------------
// Methods and handlers

/** A method: what it does, its params (an object of `p` builders; none: it takes no params;
 * `p.any()`: the params as they came) and the function, called as `fn.call(state, ctx, params)`. */
export function method(description, params, fn) {
  if (typeof params === "function" && fn === undefined) {
    fn = params;
    params = null;
  }
  if (typeof fn !== "function") throw new TypeError("method(description, params, fn): fn is not a function");
  return { description, params: params ?? null, fn };
}

const NAME = /^[a-z][a-z0-9-]*$/;

/** A handler: `{name, version, description, methods, state?, config?, http?, directories?,
 * fleet?, vendor?, license?, source?}`. Export it as the module's default. */
export function handler(spec) {
  if (!NAME.test(spec.name ?? "")) {
    throw new TypeError(`\`${spec.name}\` is not a handler name: lowercase letters, digits and \`-\`, starting with a letter`);
  }
  const methods = new Map();
  for (const [name, m] of Object.entries(spec.methods ?? {})) {
    if (!m || typeof m.fn !== "function") throw new TypeError(`method \`${name}\`: use method(description, params, fn)`);
    let style = "object";
    if (m.params === null) style = "none";
    else if (m.params instanceof Param) style = "raw";
    const schema = style === "object" ? objectSchema(m.params) : style === "raw" ? (Object.keys(m.params.schema).length ? m.params.schema : null) : null;
    methods.set(name, { ...m, name, style, schema });
  }
  let state;
  const makeState = spec.state ?? (() => ({}));
  return {
    __schedulezero__: true,
    name: spec.name,
    info() {
      return {
        name: spec.name,
        version: spec.version,
        description: spec.description ?? "",
        methods: [...methods.values()].map((m) => ({
          name: m.name,
          description: m.description,
          paramsSchema: m.schema === null ? undefined : JSON.stringify(m.schema),
        })),
      };
    },
    manifest() {
      const out = {
        manifest_version: 1,
        package: {
          name: spec.name,
          version: spec.version,
          description: spec.description ?? "",
          vendor: spec.vendor ?? "",
          license: spec.license ?? "",
          source: spec.source ?? "",
        },
        http: spec.http ?? [],
        directories: spec.directories ?? [],
        config: spec.config ?? [],
      };
      if (spec.fleet !== undefined) out.fleet = { purpose: spec.fleet };
      return out;
    },
    /** Starts the next call on a fresh state (as a fresh instance would). */
    reset() {
      state = undefined;
    },
    /** Runs one call: the result as JSON text, or a thrown `HandlerError` (or, from the
     * method, anything else it threw). */
    invoke(ctx, name, paramsText) {
      const m = methods.get(name);
      if (!m) {
        throw new UnknownMethod(`${spec.name} has no method \`${name}\` (it has: ${[...methods.keys()].join(", ") || "none"})`);
      }
      let value = null;
      if (paramsText.trim()) {
        try {
          value = JSON.parse(paramsText);
        } catch (e) {
          throw new InvalidParams(`params are not JSON: ${e.message}`);
        }
      }
      let params;
      try {
        if (m.style === "none") {
          if (value !== null && !(typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0)) {
            throw new ParamsError(`\`${name}\` takes no params`);
          }
        } else if (m.style === "raw") {
          params = m.params.check(value, "");
        } else {
          if (value === null) value = {};
          if (typeof value !== "object" || Array.isArray(value)) throw new ParamsError(`expected an object of params, got ${show(value)}`);
          params = checkObject(m.params, value, "");
        }
      } catch (e) {
        if (e instanceof ParamsError) throw new InvalidParams(e.message);
        throw e;
      }
      if (state === undefined) state = makeState();
      const result = m.fn.call(state, ctx, params);
      const encode = (value) => {
        const text = JSON.stringify(value === undefined ? null : value);
        if (text === undefined) throw new Failed(`\`${name}\` returned a result that is not JSON`);
        return text;
      };
      // An async method (one that awaits `fetch`, say): the engine runs its event loop until
      // the promise settles.
      if (result && typeof result.then === "function") return Promise.resolve(result).then(encode);
      return encode(result);
    },
  };
}

/** The context of a call made by hand (and for tests). */
export function adhocContext(runId = "adhoc-run") {
  return { jobId: "adhoc", runId, attempt: 1, scheduledTime: new Date() };
}

/** An unexpected exception as a failure message: what it was, then its stack. */
export function failureText(e) {
  if (!(e instanceof Error)) return `uncaught: ${show(e)}`;
  const head = `${e.name}: ${e.message}`;
  // The handler's own frames, with paths relative to its folder: the SDK's frames and the
  // engine's below them say nothing.
  const stack = (e.stack ?? "")
    .split("\n")
    .filter((line) => line.trim() && !/schedulezero-sdk\.js:|\/sources\/initializer\.js:/.test(line))
    .map((line) => line.replace(/@(?:[^@\s]*?schedulezero-build-[^/]+\/)?app\//, "@"))
    .join("\n");
  const text = stack ? `${head}\n\nStack (most recent call first):\n${stack}` : head;
  return text.length <= 16384 ? text : `${text.slice(0, 16380)} ...`;
}

// -------------------------------------------------------------------------------------------
// Running natively, for a handler's own tests

export const testing = {
  /** The configuration values and secrets the handler sees, and an empty log. */
  configure(values = {}) {
    native.values = new Map(Object.entries(values));
    native.records = [];
  },
  /** The records written since `configure`, as [level, message]. */
  logs: () => [...native.records],
  /** Calls `name` with `params` (JSON data) and returns its result as JSON data; the state is
   * kept between calls as in a hot instance, unless `fresh`. */
  call(h, name, params = null, { ctx, fresh } = {}) {
    if (fresh) h.reset();
    const out = h.invoke(ctx ?? adhocContext(), name, JSON.stringify(params));
    return typeof out === "string" ? JSON.parse(out) : out.then(JSON.parse);
  },
  /** What `describe` answers, each params schema as an object. */
  describe(h) {
    const info = h.info();
    for (const m of info.methods) m.paramsSchema = m.paramsSchema === undefined ? undefined : JSON.parse(m.paramsSchema);
    return info;
  },
};

// -------------------------------------------------------------------------------------------
// Inside a component (the build's glue calls it)

/** The `handler` export, over the contract's imports. */
export function exportHandler(h, imports) {
  host = {
    get: imports.config.get,
    keys: imports.config.keys,
    log: imports.log,
  };
  const levels = { log: "info", info: "info", debug: "debug", warn: "warn", error: "error", trace: "trace" };
  const text = (a) => {
    if (typeof a === "string") return a;
    if (a instanceof Error) return a.stack ? `${a.name}: ${a.message}\n${a.stack}` : `${a.name}: ${a.message}`;
    try {
      return JSON.stringify(a) ?? String(a);
    } catch {
      return String(a);
    }
  };
  for (const [name, level] of Object.entries(levels)) {
    globalThis.console[name] = (...args) => imports.log(level, args.map(text).join(" "));
  }
  const info = h.info();
  return {
    describe: () => info,
    invoke(ctx, name, params) {
      const at = ctx.scheduledTime;
      const when = new Date(Number(at.seconds) * 1000 + Math.floor(at.nanoseconds / 1e6));
      const context = { jobId: ctx.jobId, runId: ctx.runId, attempt: ctx.attempt, scheduledTime: when };
      const fail = (e) => {
        if (e instanceof HandlerError) throw { tag: e.kind, val: e.message };
        // Out of memory (the engine throws the string): let the instance trap, so that the
        // host reports the memory limit and starts the next call on a fresh instance.
        if (e === "out of memory") throw e;
        throw { tag: "failed", val: failureText(e) };
      };
      try {
        const out = h.invoke(context, name, params);
        return typeof out === "string" ? out : out.catch(fail);
      } catch (e) {
        return fail(e);
      }
    },
  };
}
