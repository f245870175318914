// misbehave-js: a JavaScript handler that misbehaves on request, to show what the host contains.
//
// Each method does one thing a handler should not (loop forever, allocate without end, throw)
// or reaches for something the operator grants or withholds (a configuration value, a secret);
// the tests call them to check that the host stops, refuses and reports each one.

import { handler, method, p, config, Denied, Failed, Http, InvalidParams, Retryable, Secret, Setting } from "@schedulezero/sdk";

const ERRORS = { invalid_params: InvalidParams, failed: Failed, retryable: Retryable, denied: Denied };

function checkReading(reading) {
  if (reading < 0) throw new RangeError(`a reading cannot be negative: ${reading}`);
  return reading;
}

export default handler({
  name: "misbehave-js",
  version: "0.1.0",
  description: "Misbehaves on request (loops, allocates, throws) and reaches for granted things, to show what the host contains.",
  config: [Setting("anything", "A plain value."), Secret("token", "A secret.")],
  http: [Http("*://*:*", "Whatever a test points it at, to prove what the host refuses.")],
  methods: {
    ok: method("Answers at once.", () => ({ ok: true })),

    spin: method("Loops forever (the call's timeout ends it).", () => {
      let n = 0;
      for (;;) n += 1;
    }),

    grow_memory: method(
      "Allocates memory without end (the memory limit ends it).",
      { chunk_mib: p.integer("MiB per allocation.", { min: 1, max: 64 }).default(16) },
      (_ctx, { chunk_mib }) => {
        const held = [];
        for (;;) held.push(new Uint8Array(chunk_mib * 1024 * 1024).fill(1));
      },
    ),

    raise_error: method(
      "Throws an exception two calls deep (the failure carries the stack).",
      { reading: p.number("A reading; negative ones are refused.").default(-1) },
      (_ctx, { reading }) => checkReading(reading),
    ),

    fail: method(
      "Fails with the given kind and message.",
      { kind: p.oneOf(Object.keys(ERRORS)), message: p.string() },
      (_ctx, { kind, message }) => {
        throw new ERRORS[kind](message);
      },
    ),

    read_config: method("The configuration value `key` and the keys granted.", { key: p.string() }, (_ctx, { key }) => ({
      value: config.get(key) ?? null,
      keys: config.keys(),
    })),

    fetch: method("Fetches `url` (GET) and returns the status and the body's text.", { url: p.string() }, async (_ctx, { url }) => {
      const response = await fetch(url);
      return { status: response.status, body: await response.text() };
    }),

    use_secret: method("Reads the secret `token` (refused when not granted) and says how long it is.", () => ({
      length: config.secret("token").length,
    })),
  },
});
