// The JavaScript SDK, natively: schemas from the params builders, params checked, results,
// error kinds, failure text, the manifest and the build's pieces. Run with `node --test sdk/js/test`
// (the integration tests run it too).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { customSection, typecheck, world } from "../build.mjs";
import {
  Denied,
  Directory,
  Http,
  InvalidParams,
  Retryable,
  Secret,
  Setting,
  UnknownMethod,
  config,
  failureText,
  handler,
  log,
  method,
  p,
  testing,
} from "../schedulezero.js";

function inner() {
  throw new TypeError("missing");
}

const shop = handler({
  name: "shop",
  version: "1.2.3",
  description: "Sells things.",
  config: [Setting("currency", "The currency."), Secret("api_key", "The API key.")],
  http: [Http("https://api.example.com", "Prices.")],
  directories: [Directory.readWrite("out", "Receipts.")],
  state: () => ({ sold: 0 }),
  methods: {
    sell: method(
      "Sells `count` of `item`.",
      {
        item: p.string("What to sell."),
        count: p.integer("How many.", { min: 1, max: 100 }).default(1),
        price: p.number().optional(),
        tags: p.array(p.string()).optional(),
        colour: p.oneOf(["red", "blue"]).default("red"),
        address: p.object({ city: p.string(), zip: p.string().optional() }).optional(),
      },
      function (ctx, params) {
        this.sold += params.count;
        return { ...params, sold: this.sold, run: ctx.runId };
      },
    ),
    legacy: method("Takes whatever came.", p.any(), (_ctx, params) => ({ got: params })),
    nothing: method("Takes nothing.", () => undefined),
    secret: method("Reads the secret.", () => config.secret("api_key").length),
    boom: method("Throws.", () => inner()),
    retry: method("Asks to be retried.", () => {
      throw new Retryable("busy upstream");
    }),
    later: method("Awaits.", { n: p.integer() }, async (_ctx, { n }) => {
      await null;
      if (n < 0) throw new InvalidParams("n is not negative");
      return { n };
    }),
  },
});

const call = (name, params = null) => testing.call(shop, name, params, { fresh: true });

test("describe", () => {
  const info = testing.describe(shop);
  assert.deepEqual([info.name, info.version, info.description], ["shop", "1.2.3", "Sells things."]);
  const methods = Object.fromEntries(info.methods.map((m) => [m.name, m]));
  assert.deepEqual(Object.keys(methods), ["sell", "legacy", "nothing", "secret", "boom", "retry", "later"]);
  const s = methods.sell.paramsSchema;
  assert.deepEqual(s.required, ["item"]);
  assert.equal(s.additionalProperties, false);
  assert.deepEqual(s.properties.item, { type: "string", description: "What to sell." });
  assert.deepEqual(s.properties.count, { type: "integer", description: "How many.", minimum: 1, maximum: 100, default: 1 });
  assert.deepEqual(s.properties.colour, { enum: ["red", "blue"], default: "red" });
  assert.deepEqual(s.properties.address.required, ["city"]);
  assert.equal(methods.legacy.paramsSchema, undefined);
  assert.equal(methods.nothing.paramsSchema, undefined);
});

test("params are checked and defaults applied", () => {
  const ctx = { jobId: "j", runId: "run-7", attempt: 1, scheduledTime: new Date(0) };
  const got = testing.call(shop, "sell", { item: "pear", count: 2 }, { ctx, fresh: true });
  assert.deepEqual(got, { item: "pear", count: 2, colour: "red", sold: 2, run: "run-7" });
  assert.equal(testing.call(shop, "sell", { item: "pear" }).sold, 3, "the state lives on");
  const cases = [
    [{ item: 3 }, "item: expected a string, got 3"],
    [{ item: "x", count: 1.5 }, "count: expected an integer, got 1.5"],
    [{ item: "x", count: 0 }, "count: must be at least 1, got 0"],
    [{ count: 1 }, "missing field `item`"],
    [{ item: "x", cuont: 1 }, "unknown field `cuont` (expected: address, colour, count, item, price, tags)"],
    [{ item: "x", colour: "green" }, 'colour: expected one of ["red","blue"], got "green"'],
    [{ item: "x", tags: ["a", 2] }, "tags[1]: expected a string, got 2"],
    [{ item: "x", address: { town: "y" } }, "address: unknown field `town` (expected: city, zip)"],
    [[1], "expected an object of params, got [1]"],
  ];
  for (const [params, message] of cases) {
    assert.throws(() => call("sell", params), (e) => e instanceof InvalidParams && e.message === message, JSON.stringify(params));
  }
});

test("raw params, none, unknown methods, bad JSON", () => {
  assert.deepEqual(call("legacy", [1, { a: null }]), { got: [1, { a: null }] });
  assert.equal(call("nothing"), null);
  assert.equal(call("nothing", {}), null);
  assert.throws(() => call("nothing", { a: 1 }), /takes no params/);
  assert.throws(() => call("sel"), (e) => e instanceof UnknownMethod && e.message.startsWith("shop has no method `sel` (it has: sell, "));
  assert.throws(() => shop.invoke({}, "sell", "{nope"), (e) => e instanceof InvalidParams && /^params are not JSON/.test(e.message));
});

test("async methods", async () => {
  assert.deepEqual(await call("later", { n: 2 }), { n: 2 });
  await assert.rejects(call("later", { n: -1 }), (e) => e instanceof InvalidParams);
  assert.throws(() => call("later", {}), /missing field `n`/, "params are checked before it runs");
});

test("error kinds, config and log", () => {
  testing.configure({ currency: "EUR" });
  assert.throws(() => call("retry"), (e) => e instanceof Retryable && e.kind === "retryable" && e.message === "busy upstream");
  assert.throws(() => call("secret"), (e) => e instanceof Denied && e.message === "secret `api_key` is not granted");
  testing.configure({ api_key: "12345", currency: "EUR" });
  assert.equal(call("secret"), 5);
  assert.equal(config.get("currency"), "EUR");
  assert.deepEqual(config.keys(), ["api_key", "currency"]);
  assert.equal(config.get("other"), undefined);
  assert.throws(() => config.require("other"), /configuration value `other` is not granted/);
  log.info("hello");
  log.warn("careful");
  assert.deepEqual(testing.logs(), [["info", "hello"], ["warn", "careful"]]);
});

test("an unexpected exception fails with its stack", () => {
  let text;
  try {
    call("boom");
  } catch (e) {
    text = failureText(e);
  }
  const [first, rest] = text.split("\n\n");
  assert.equal(first, "TypeError: missing");
  assert.ok(rest.startsWith("Stack (most recent call first):\n"), rest);
  assert.match(rest, /inner/);
  assert.equal(failureText("out of memory"), 'uncaught: "out of memory"');
});

test("the manifest", () => {
  const m = shop.manifest();
  assert.equal(m.manifest_version, 1);
  assert.equal(m.package.name, "shop");
  assert.deepEqual(m.config, [
    { key: "currency", description: "The currency.", secret: false },
    { key: "api_key", description: "The API key.", secret: true },
  ]);
  assert.deepEqual(m.http, [{ destination: "https://api.example.com", purpose: "Prices." }]);
  assert.deepEqual(m.directories, [{ name: "out", access: "read-write", purpose: "Receipts." }]);
  assert.equal(m.fleet, undefined);
});

test("names are checked", () => {
  for (const name of ["Shop", "1shop", "sh_op", ""]) {
    assert.throws(() => handler({ name, version: "0.1.0", methods: {} }), /is not a handler name/);
  }
});

test("the build's world and section", () => {
  const contract = readFileSync(fileURLToPath(new URL("../wit/handler.wit", import.meta.url)), "utf8");
  const root = readFileSync(fileURLToPath(new URL("../../../wit/handler.wit", import.meta.url)), "utf8");
  assert.equal(contract, root, "copy wit/handler.wit to sdk/js/wit/");
  assert.match(world(contract, shop), /world schedulezero-app \{\n {4}import log;\n {4}import config;\n {4}export handler;\n\}/);
  const watcher = handler({ name: "watcher", version: "0.1.0", fleet: "Watches.", methods: {} });
  assert.match(world(contract, watcher), / {4}import fleet;\n/);
  const section = customSection("schedulezero-manifest", Buffer.alloc(300, 120));
  assert.deepEqual([...section.subarray(0, 4)], [0, 0xc2, 0x02, 21]);
  assert.equal(section.subarray(4, 25).toString(), "schedulezero-manifest");
  assert.equal(section.length, 25 + 300);
});

test("TypeScript handlers are type-checked against the SDK's types", async () => {
  const fixture = fileURLToPath(new URL("./fixtures/greeter-ts/app.ts", import.meta.url));
  assert.deepEqual(await typecheck([fixture]), []);
  const dir = mkdtempSync(path.join(tmpdir(), "sz-ts-"));
  try {
    const bad = path.join(dir, "app.ts");
    writeFileSync(
      bad,
      [
        'import { handler, method, p } from "@schedulezero/sdk";',
        "export default handler({",
        '  name: "bad", version: "0.1.0",',
        '  methods: { m: method("M.", { n: p.integer() }, (_ctx, { n }) => n.toUpperCase()) },',
        "});",
        "",
      ].join("\n"),
    );
    const errors = await typecheck([bad]);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0], /^app\.ts:4:\d+: Property 'toUpperCase' does not exist on type 'number'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
