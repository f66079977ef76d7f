/** The handler folder loader, in-process: what counts as a handler file, shapes, errors. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StopError } from "../../src/errors.ts";
import {
  HandlerLoadError,
  handlerFiles,
  loadHandlerModules,
  validateHandlerExport,
} from "../../src/runtime/handlers/loader.ts";
import { registerMetaforaModule } from "../../src/runtime/handlers/metafora-module.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function folder(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), "metafora-loader-"));
  dirs.push(d);
  for (const [name, source] of Object.entries(files)) writeFileSync(join(d, name), source);
  return d;
}

describe("handler files", () => {
  test(".ts, .js and .mjs count; dotfiles, .d.ts, tests, other extensions and folders do not", () => {
    const d = folder({
      "a.ts": "",
      "b.js": "",
      "c.mjs": "",
      ".d.ts": "",
      "e.d.ts": "",
      "f.test.ts": "",
      "g.spec.js": "",
      "h.json": "",
      "i.cjs": "",
    });
    expect(handlerFiles(d).map((f) => f.slice(d.length + 1))).toEqual(["a.ts", "b.js", "c.mjs"]);
  });
});

describe("default export shapes", () => {
  const run = () => "done" as const;
  test("an object with run; name defaults to the file name", () => {
    const h = validateHandlerExport("/x/crawl.ts", { default: { run } });
    expect(typeof h).toBe("object");
    expect(h).toMatchObject({ name: "crawl", stateful: false });
  });
  test("a bare function", () => {
    expect(validateHandlerExport("/x/mail.mjs", { default: run })).toMatchObject({ name: "mail", stateful: false });
  });
  test("a class instance (run on the prototype) keeps its `this`", async () => {
    class Counter {
      calls = 0;
      run() {
        this.calls++;
        return "release" as const;
      }
    }
    const instance = new Counter();
    const h = validateHandlerExport("/x/counter.ts", { default: instance });
    if (typeof h === "string") throw new Error(h);
    expect(await (h.run as () => unknown)()).toBe("release");
    expect(instance.calls).toBe(1);
  });
  test("stateful with an error policy", () => {
    expect(
      validateHandlerExport("/x/job.ts", {
        default: { name: "job", stateful: true, run, errorPolicy: () => undefined },
      }),
    ).toMatchObject({ name: "job", stateful: true });
  });
  test("wrong shapes say what is wrong", () => {
    expect(validateHandlerExport("/x/a.ts", {})).toContain("no default export");
    expect(validateHandlerExport("/x/a.ts", { default: 42 })).toContain("default export is number");
    expect(validateHandlerExport("/x/a.ts", { default: { run: "no" } })).toContain("run must be a function");
    expect(validateHandlerExport("/x/a.ts", { default: { run, name: "" } })).toContain("name must not be empty");
    expect(validateHandlerExport("/x/a.ts", { default: { run, statefull: true } })).toContain(
      'unknown field "statefull"',
    );
    expect(validateHandlerExport("/x/a.ts", { default: { run, errorPolicy: () => undefined } })).toContain(
      "errorPolicy only applies to stateful handlers",
    );
  });
});

describe("loading a folder", () => {
  test('files import "metafora" from a folder with no node_modules and share the runtime\'s classes', async () => {
    expect(["bun-plugin", "import-map"]).toContain(registerMetaforaModule());
    const d = folder({
      "hello.ts": `import { defineHandler, StopError } from "metafora";\nexport const stopErrorClass = StopError;\nexport default defineHandler({ name: "hi", run: () => "done" });\n`,
    });
    const modules = await loadHandlerModules(d);
    expect(modules.map((m) => m.name)).toEqual(["hi"]);
    const mod = (await import(join(d, "hello.ts"))) as { stopErrorClass: unknown };
    expect(mod.stopErrorClass).toBe(StopError);
  });

  test("every broken file is listed in one HandlerLoadError", async () => {
    const d = folder({
      "ok.ts": "export default () => 'done';",
      "syntax.ts": "export default {",
      "throws.ts": "throw new Error('boom at import');",
      "missing.ts": "import x from 'no-such-package-xyz'; export default x;",
      "one.ts": "export default { name: 'twin', run() {} };",
      "two.js": "export default { name: 'twin', run() {} };",
    });
    let err: unknown;
    try {
      await loadHandlerModules(d);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HandlerLoadError);
    const e = err as HandlerLoadError;
    expect(e.broken.map((b) => b.file.slice(d.length + 1))).toEqual([
      "missing.ts",
      "one.ts",
      "syntax.ts",
      "throws.ts",
      "two.js",
    ]);
    expect(e.message).toContain("5 broken handler files");
    expect(e.message).toContain("syntax.ts: syntax error");
    expect(e.message).toContain("throws.ts: failed to load: boom at import");
    expect(e.message).toContain("missing.ts: cannot resolve an import");
    expect(e.message).toContain('one.ts: duplicate handler name "twin" (also in two.js)');
  });

  test("a module whose top-level await never settles times out naming the file; the others still load", async () => {
    const d = folder({
      "hang.ts": "await new Promise(() => {});\nexport default () => 'done';",
      "ok.ts": "export default () => 'done';",
    });
    let err: unknown;
    try {
      await loadHandlerModules(d, undefined, { timeout: 300 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HandlerLoadError);
    const e = err as HandlerLoadError;
    expect(e.broken.map((b) => b.file.slice(d.length + 1))).toEqual(["hang.ts"]);
    expect(e.message).toContain("hang.ts: did not finish loading within 300 ms");
    expect(e.message).toContain("handler_load_timeout");
  });

  test("a missing folder is a config error naming it", async () => {
    await expect(loadHandlerModules("/no/such/folder")).rejects.toThrow(
      /handler folder \/no\/such\/folder cannot be read/,
    );
  });
});
