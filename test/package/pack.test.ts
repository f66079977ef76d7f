/**
 * The npm package as users get it: `npm pack` (whose prepack compiles the library to
 * dist/lib), unpacked into a temporary project's node_modules, next to the dependencies it
 * declares (linked from this repository's install: no network). A small program then runs a
 * memory cluster of two nodes under Node (the compiled JS), Bun (the TypeScript sources, via
 * the "bun" export condition) and Deno (the compiled JS through node_modules), and checks
 * that "metafora/etcd" and "metafora/statemachine" resolve.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

const REPO = resolve(import.meta.dir, "../..");
const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
};

const APP = `
import { Consumer, MemoryBroker, defineHandler, setLogger, silentLogger } from "metafora";
import * as etcd from "metafora/etcd";
import { describeState } from "metafora/statemachine";
setLogger(silentLogger);
const ran = new Map();
const handler = defineHandler({ async run(task, ctx) { ran.set(task.id, ctx.node); return "done"; } });
const broker = new MemoryBroker();
const nodes = ["a", "b"].map((node) => new Consumer({ node, coordinator: broker.coordinator(node), handler }));
await Promise.all(nodes.map((n) => n.start()));
for (let i = 0; i < 20; i++) await broker.client().submitTask("t" + i, { i });
const deadline = Date.now() + 20000;
while (ran.size < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
await Promise.all(nodes.map((n) => n.shutdown({ timeout: 2000 })));
console.log(JSON.stringify({
  ran: ran.size,
  left: (await broker.client().tasks()).length,
  etcd: typeof etcd.EtcdCoordinator,
  state: describeState({ code: "paused" }),
  entry: import.meta.resolve("metafora"),
}));
`;

let work: string;
let project: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "metafora-pack-"));
  const packed = spawnSync("npm", ["pack", "--silent", "--pack-destination", work], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 240_000,
  });
  if (packed.status !== 0) throw new Error(`npm pack failed (${packed.status}):\n${packed.stdout}\n${packed.stderr}`);
  const tarball = join(work, `${pkg.name}-${pkg.version}.tgz`);
  if (!existsSync(tarball)) throw new Error(`npm pack wrote no ${tarball}:\n${packed.stdout}`);

  project = join(work, "app");
  const target = join(project, "node_modules", pkg.name);
  mkdirSync(target, { recursive: true });
  const untar = spawnSync("tar", ["xzf", tarball, "-C", target, "--strip-components=1"], { encoding: "utf8" });
  if (untar.status !== 0) throw new Error(`tar failed: ${untar.stderr}`);
  // The declared dependencies, from this repository's install (the test must not download).
  for (const dep of Object.keys(pkg.dependencies)) {
    const link = join(project, "node_modules", dep);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join(REPO, "node_modules", dep), link);
  }
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify({ name: "app", private: true, type: "module", dependencies: { [pkg.name]: pkg.version } }),
  );
  writeFileSync(join(project, "app.mjs"), APP);
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const res = spawnSync(cmd, args, {
    cwd: project,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  return { status: res.status, out: `${res.stdout}${res.stderr}` };
}

const expected = (entry: string) => ({
  ran: 20,
  left: 0,
  etcd: "function",
  state: expect.stringContaining("paused"),
  entry: expect.stringMatching(new RegExp(`/node_modules/metafora/${entry}$`)),
});
const lastJson = (out: string): unknown =>
  JSON.parse(
    out
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .pop() ?? "null",
  );

describe("the npm package", () => {
  test("ships the compiled library and no tests", () => {
    const files = spawnSync("tar", ["tzf", join(work, `${pkg.name}-${pkg.version}.tgz`)], { encoding: "utf8" }).stdout;
    expect(files).toContain("package/dist/lib/index.js");
    expect(files).toContain("package/dist/lib/index.d.ts");
    expect(files).toContain("package/dist/lib/etcd.js");
    expect(files).toContain("package/src/index.ts");
    expect(files).not.toContain("package/test/");
  });

  test("runs a memory cluster under Node", () => {
    const { status, out } = run("node", ["app.mjs"]);
    expect(status, out).toBe(0);
    expect(lastJson(out)).toEqual(expected("dist/lib/index.js"));
  });

  test("runs a memory cluster under Bun, from the TypeScript sources", () => {
    const { status, out } = run(process.execPath, ["app.mjs"]);
    expect(status, out).toBe(0);
    expect(lastJson(out)).toEqual(expected("src/index.ts"));
  });

  test("runs a memory cluster under Deno", () => {
    const deno = join(REPO, "node_modules", ".bin", "deno");
    const { status, out } = run(deno, ["run", "--quiet", "--allow-read", "--allow-env", "--allow-sys", "app.mjs"]);
    expect(status, out).toBe(0);
    expect(lastJson(out)).toEqual(expected("dist/lib/index.js"));
  }, 120_000);
});
