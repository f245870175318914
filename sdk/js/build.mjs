#!/usr/bin/env node
// Builds a JavaScript handler into a ScheduleZero component.
//
//   node sdk/js/build.mjs DIR [-o FILE] [--module FILE]
//
// DIR holds the handler's code; its module (`app.js` by default, or `app.ts`) exports the
// handler as its default (`export default handler({...})`) and imports the SDK as
// "@schedulezero/sdk". TypeScript modules are type-checked (strict) and transpiled first. The build
// copies DIR aside with that import pointed at the SDK's file, imports the copy here to read the
// handler's name and what it asks the operator for, makes the contract's world with the imports
// it needs, runs componentize-js (which pre-initialises the engine with the app evaluated, so a
// new instance starts from that memory image) and writes the manifest into the component. The
// component goes to FILE, by default `<name>.wasm` in the current directory.

import { componentize } from "@bytecodealliance/componentize-js";
import { init, parse } from "es-module-lexer";
import { cp, mkdtemp, readFile, readdir, rename, rm, mkdir, writeFile, stat } from "node:fs/promises";
import { realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const SDK = "@schedulezero/sdk";
const here = path.dirname(fileURLToPath(import.meta.url));
const WORLD = "schedulezero-app";
const SECTION = "schedulezero-manifest";

export class BuildError extends Error {}

/** The contract with a world of the imports the handler uses. */
export function world(contract, h) {
  const manifest = h.manifest();
  const imports = ["log", "config", ...(manifest.fleet ? ["fleet"] : [])];
  const lines = [...imports.map((i) => `    import ${i};`), "    export handler;"];
  return `${contract}\nworld ${WORLD} {\n${lines.join("\n")}\n}\n`;
}

/** A WebAssembly custom section. */
export function customSection(name, data) {
  const leb = (n) => {
    const out = [];
    do {
      let byte = n & 0x7f;
      n = Math.floor(n / 128);
      if (n) byte |= 0x80;
      out.push(byte);
    } while (n);
    return out;
  };
  const nameBytes = Buffer.from(name);
  const body = Buffer.concat([Buffer.from(leb(nameBytes.length)), nameBytes, data]);
  return Buffer.concat([Buffer.from([0]), Buffer.from(leb(body.length)), body]);
}

/** Points every import of the SDK in the copied modules at the SDK's file (relative paths:
 * componentize-js resolves those). */
async function pointAtSdk(dir, sdkFile) {
  await init;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !/\.(m?js)$/.test(entry.name)) continue;
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    const source = await readFile(file, "utf8");
    let imports;
    try {
      [imports] = parse(source, file);
    } catch (e) {
      throw new BuildError(`${path.relative(dir, file)} is not a valid module: ${e.message}`);
    }
    let out = "";
    let last = 0;
    for (const i of imports) {
      if (i.n !== SDK) continue;
      let rel = path.relative(path.dirname(file), sdkFile).split(path.sep).join("/");
      if (!rel.startsWith(".")) rel = `./${rel}`;
      out += source.slice(last, i.s) + rel;
      last = i.e;
    }
    if (last) await writeFile(file, out + source.slice(last));
  }
}

/** The `.ts` modules under `dir` (declaration files left out). */
async function typescriptFiles(dir) {
  return (await readdir(dir, { withFileTypes: true, recursive: true }))
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts"))
    .map((e) => path.join(e.parentPath ?? e.path, e.name));
}

/** Type-checks the TypeScript modules `files` (strict, the SDK's types for "@schedulezero/sdk",
 * the standard library and `fetch`): the errors, one line each. */
export async function typecheck(files) {
  const ts = (await import("typescript")).default;
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    types: [],
    paths: { [SDK]: [path.join(here, "schedulezero.d.ts")] },
  };
  const program = ts.createProgram(files, options);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (!d.file || d.start === undefined) return text;
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${path.basename(d.file.fileName)}:${line + 1}:${character + 1}: ${text}`;
  });
}

/** Type-checks the copied TypeScript modules and writes a `.js` beside each. */
async function transpile(dir) {
  const files = await typescriptFiles(dir);
  if (!files.length) return;
  const errors = await typecheck(files);
  if (errors.length) {
    const shown = errors.slice(0, 20).join("\n  ");
    throw new BuildError(`TypeScript: ${errors.length} error(s):\n  ${shown}`);
  }
  const ts = (await import("typescript")).default;
  for (const file of files) {
    const out = ts.transpileModule(await readFile(file, "utf8"), {
      fileName: file,
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
    });
    await writeFile(file.replace(/\.ts$/, ".js"), out.outputText);
  }
}

/** The module to build in `appDir`: `app.js`, or `app.ts` when there is no `app.js`. */
async function entryOf(appDir, moduleName) {
  if (moduleName) return moduleName;
  const isFile = async (name) => (await stat(path.join(appDir, name)).catch(() => null))?.isFile();
  return (await isFile("app.js")) || !(await isFile("app.ts")) ? "app.js" : "app.ts";
}

/** Builds the component; returns where it was written and the handler's name. A module in
 * TypeScript (`app.ts`, and the `.ts` modules it imports as `./name.js`) is type-checked and
 * transpiled first. */
export async function build(appDir, outFile, moduleOption) {
  const source = await entryOf(appDir, moduleOption);
  const entry = path.join(appDir, source);
  if (!(await stat(entry).catch(() => null))?.isFile()) throw new BuildError(`${appDir} has no module ${source}`);
  const moduleName = source.replace(/\.ts$/, ".js");
  const work = await mkdtemp(path.join(tmpdir(), "schedulezero-build-"));
  try {
    const app = path.join(work, "app");
    await cp(appDir, app, {
      recursive: true,
      // Not the dependencies, hidden files, components, nor the copy of the SDK `plugins new`
      // put beside the app (the SDK is put in below).
      filter: (src) => {
        const rel = path.relative(appDir, src);
        return !/(^|[/\\])(node_modules|\.[^/\\]+)$/.test(rel) && !src.endsWith(".wasm") && rel !== path.join("vendor", "schedulezero-sdk");
      },
    });
    await transpile(app);
    const sdkFile = path.join(work, "schedulezero-sdk.js");
    await cp(path.join(here, "schedulezero.js"), sdkFile);
    await pointAtSdk(app, sdkFile);

    let h;
    try {
      h = (await import(pathToFileURL(path.join(app, moduleName)).href)).default;
    } catch (e) {
      throw new BuildError(`importing ${moduleName} failed: ${e.stack ?? e}`);
    }
    if (!h?.__schedulezero__) throw new BuildError(`${moduleName} does not export a handler as its default (export default handler({...}))`);
    const manifest = h.manifest();

    await mkdir(path.join(work, "wit"));
    const contract = await readFile(path.join(here, "wit", "handler.wit"), "utf8");
    await writeFile(path.join(work, "wit", "handler.wit"), world(contract, h));
    const glue = path.join(work, "component.js");
    await writeFile(
      glue,
      [
        `import app from "./app/${moduleName}";`,
        `import { exportHandler } from "./schedulezero-sdk.js";`,
        `import { get, keys } from "schedulezero:handler/config@0.1.0";`,
        `import { log } from "schedulezero:handler/log@0.1.0";`,
        `export const handler = exportHandler(app, { config: { get, keys }, log });`,
        "",
      ].join("\n"),
    );
    // Outbound HTTP (`fetch`) only for a handler that asks for destinations: the others do not
    // import `wasi:http` at all.
    const disableFeatures = ["fetch-event", ...(manifest.http.length ? [] : ["http"])];
    let component;
    try {
      ({ component } = await componentize({
        sourcePath: glue,
        witPath: path.join(work, "wit"),
        worldName: WORLD,
        disableFeatures,
      }));
    } catch (e) {
      throw new BuildError(`componentize-js failed: ${e.message ?? e}`);
    }
    const wasm = Buffer.concat([Buffer.from(component), customSection(SECTION, Buffer.from(JSON.stringify(manifest)))]);
    const out = outFile ?? `${h.name}.wasm`;
    await mkdir(path.dirname(path.resolve(out)), { recursive: true });
    const partial = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.partial`);
    try {
      await writeFile(partial, wasm);
      await rename(partial, out);
    } finally {
      await rm(partial, { force: true });
    }
    return { out, name: h.name, bytes: wasm.length };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function main(argv) {
  let dir;
  let out;
  let moduleName;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-o" || a === "--out") out = argv[++i];
    else if (a === "--module") moduleName = argv[++i];
    else if (a === "-h" || a === "--help") {
      console.log(
        "usage: node build.mjs DIR [-o FILE] [--module FILE]\nBuilds a JavaScript (or TypeScript) handler into a ScheduleZero component.\nThe module defaults to app.js, or app.ts.",
      );
      return 0;
    } else if (!dir) dir = a;
    else {
      console.error(`build.mjs: unexpected argument ${a}`);
      return 2;
    }
  }
  if (!dir) {
    console.error("usage: node build.mjs DIR [-o FILE] [--module FILE]");
    return 2;
  }
  const started = Date.now();
  try {
    const { out: written, bytes } = await build(path.resolve(dir), out, moduleName);
    console.log(`built ${written} (${(bytes / 1048576).toFixed(1)} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } catch (e) {
    if (e instanceof BuildError) {
      console.error(`build.mjs: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

// Run as a program (also through the `schedulezero-build` link npm makes), not when imported.
if (process.argv[1] && realpathSync(path.resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url))) {
  process.exitCode = await main(process.argv.slice(2));
}
