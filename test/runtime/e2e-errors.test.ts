/**
 * End-to-end, what goes wrong: broken handler files, bad configuration (file, value, env) and
 * handlers that ignore their stop signal. Each one must end in the documented exit code with a
 * message that names the culprit.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { freePort } from "../support/ports.ts";
import { metaforaBinary } from "./support/binary.ts";
import { logLines, runCli, startNode } from "./support/node.ts";
import { HANDLERS, makeWorkspace, type Workspace } from "./support/workspace.ts";

let bin: string;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  bin = await metaforaBinary();
}, 240_000);

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function workspace(handlers: Record<string, string> = { "worker.ts": HANDLERS.worker }): Workspace {
  const ws = makeWorkspace(handlers);
  cleanups.push(() => ws.remove());
  return ws;
}

async function httpEnv(): Promise<{ METAFORA_HTTP: string; METAFORA_NODE: string }> {
  return { METAFORA_HTTP: `127.0.0.1:${await freePort()}`, METAFORA_NODE: "n1" };
}

describe("start-up errors exit 78 and name the problem", () => {
  test("a handler folder with broken files lists every one of them, and nothing else", async () => {
    const ws = workspace({
      "good.ts": HANDLERS.worker,
      "syntax.ts": "export default { run(task, ctx) { return 'done' ",
      "shape.ts": "export default { name: 'shape', start() {} };",
      "dup-a.ts": "export default { name: 'same', run() { return 'done'; } };",
      "dup-b.ts": "export default { name: 'same', run() { return 'done'; } };",
      // Not handler files: must be ignored, broken as they are.
      ".hidden.ts": "this is not code",
      "types.d.ts": "this is not code",
      "good.test.ts": "this is not code",
      "notes.txt": "this is not code",
    });
    const res = await runCli(bin, ["run"], { cwd: ws.dir, env: await httpEnv() });
    expect(res.code).toBe(78);
    // One message: the broken-file report is a single log entry naming every broken file.
    const reports = logLines(res.stdout + res.stderr).filter((l) => l.msg.includes("broken handler file"));
    expect(reports.length).toBe(1);
    expect(reports[0]!.level).toBe("error");
    const text = reports[0]!.msg;
    expect(text).toContain("4 broken handler files");
    expect(text).toContain("syntax.ts: syntax error");
    expect(text).toMatch(/shape\.ts: .*run must be a function/);
    expect(text).toMatch(/shape\.ts: .*unknown field "start"/);
    expect(text).toMatch(/dup-a\.ts: duplicate handler name "same" \(also in dup-b\.ts\)/);
    expect(text).toMatch(/dup-b\.ts: duplicate handler name "same" \(also in dup-a\.ts\)/);
    for (const ignored of [".hidden.ts", "types.d.ts", "good.test.ts", "notes.txt", "good.ts"])
      expect(text).not.toContain(ignored);
  }, 30_000);

  test("an unknown key in the config file is named with the file and a suggestion", async () => {
    const ws = workspace();
    ws.writeConfig(`coordinator = "embedded"\nleese_ttl = "3s"\n[http]\nlisten = "127.0.0.1:0"\n`);
    const res = await runCli(bin, ["run"], { cwd: ws.dir, env: {} });
    expect(res.code).toBe(78);
    expect(res.stderr).toContain('unknown key "leese_ttl" in file config/metafora.toml (did you mean "lease_ttl"?)');
  }, 30_000);

  test("a bad value is named with its key, source and what is allowed", async () => {
    const ws = workspace();
    const path = ws.writeConfig(`max_tasks = -1\n[log]\nlevel = "loud"\n`, "conf/node.toml");
    const res = await runCli(bin, ["run", "--config", path], { cwd: ws.dir, env: {} });
    expect(res.code).toBe(78);
    expect(res.stderr).toContain(`max_tasks = -1 (from file ${path}): expected a whole number >= 0`);
    expect(res.stderr).toContain(
      `log.level = "loud" (from file ${path}): expected one of "debug", "info", "warn", "error"`,
    );
  }, 30_000);

  test("a bad env var and a misspelt one are named", async () => {
    const ws = workspace();
    const res = await runCli(bin, ["run"], {
      cwd: ws.dir,
      env: { METAFORA_SHUTDOWN_TIMEOUT: "soon", METAFORA_ETCD_ENDPOINT: "127.0.0.1:2379" },
    });
    expect(res.code).toBe(78);
    expect(res.stderr).toContain(
      'shutdown_timeout = "soon" (from env METAFORA_SHUTDOWN_TIMEOUT): expected a duration with a unit',
    );
    expect(res.stderr).toContain(
      "unknown environment variable METAFORA_ETCD_ENDPOINT (did you mean METAFORA_ETCD_ENDPOINTS?)",
    );
  }, 30_000);

  test("flags beat env, env beats the file; `metafora config` shows the winner and hides secrets", async () => {
    const ws = workspace();
    ws.writeConfig(`max_tasks = 1\nshutdown_timeout = "1m"\nnode = "from-file"\n[http]\ntoken = "file-secret-123"\n`);
    const res = await runCli(bin, ["config", "--json", "--max-tasks", "3"], {
      cwd: ws.dir,
      env: { METAFORA_MAX_TASKS: "2", METAFORA_SHUTDOWN_TIMEOUT: "45s", METAFORA_TOKEN: "env-secret-456" },
    });
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout) as {
      config: { maxTasks: number; shutdownTimeout: number; node: string; http: { token: string } };
      sources: Record<string, { kind: string }>;
    };
    expect(out.config.maxTasks).toBe(3);
    expect(out.sources.max_tasks!.kind).toBe("flag");
    expect(out.config.shutdownTimeout).toBe(45_000);
    expect(out.sources.shutdown_timeout!.kind).toBe("env");
    expect(out.config.node).toBe("from-file");
    expect(out.config.http.token).toBe("[redacted]");
    expect(res.stdout).not.toContain("-secret-");
    const toml = await runCli(bin, ["config"], { cwd: ws.dir, env: { METAFORA_TOKEN: "env-secret-456" } });
    expect(toml.code).toBe(0);
    expect(toml.stdout).toContain('token = "[redacted]"  # env METAFORA_TOKEN');
    expect(toml.stdout).not.toContain("-secret-");
  }, 30_000);
});

describe("one embedded node per data dir", () => {
  test("a second node on a data dir in use exits 78 naming the holder", async () => {
    const ws = workspace();
    const env = await httpEnv();
    const first = startNode(bin, { cwd: ws.dir, env });
    cleanups.push(() => first.stop());
    await first.waitReady(`http://${env.METAFORA_HTTP}`);
    const second = await runCli(bin, ["run"], { cwd: ws.dir, env: { ...(await httpEnv()), METAFORA_NODE: "n2" } });
    expect(second.code).toBe(78);
    expect(second.stdout + second.stderr).toContain(`is in use by another metafora process (pid ${first.pid})`);
    first.signal("SIGTERM");
    expect((await first.exited).code).toBe(0);
  }, 60_000);
});

describe("shutdown of handlers that ignore their signal", () => {
  test("ends at shutdown_timeout with exit 3 and names the stuck task", async () => {
    const ws = workspace({ "stubborn.ts": HANDLERS.stubborn });
    const env = { ...(await httpEnv()), METAFORA_SHUTDOWN_TIMEOUT: "1s" };
    const node = startNode(bin, { cwd: ws.dir, env });
    cleanups.push(() => node.stop());
    await node.waitReady(`http://${env.METAFORA_HTTP}`);
    expect((await runCli(bin, ["submit", "stubborn:one"], { cwd: ws.dir, env })).code).toBe(0);
    await node.waitOutput("started stubborn:one");
    const sent = Date.now();
    node.signal("SIGTERM");
    const exit = await node.exited;
    expect(exit.code).toBe(3);
    expect(Date.now() - sent).toBeLessThan(15_000); // bounded: 1 s timeout plus closing, not an hour
    expect(node.output()).toMatch(/shutdown timed out after 1s; handlers that did not stop: stubborn:one/);
  }, 60_000);

  test("a second SIGTERM forces the shutdown at once: exit 4", async () => {
    const ws = workspace({ "stubborn.ts": HANDLERS.stubborn });
    const env = { ...(await httpEnv()), METAFORA_SHUTDOWN_TIMEOUT: "10m" };
    const node = startNode(bin, { cwd: ws.dir, env });
    cleanups.push(() => node.stop());
    await node.waitReady(`http://${env.METAFORA_HTTP}`);
    expect((await runCli(bin, ["submit", "stubborn:two"], { cwd: ws.dir, env })).code).toBe(0);
    await node.waitOutput("started stubborn:two");
    node.signal("SIGTERM");
    await node.waitOutput("SIGTERM: shutting down");
    node.signal("SIGTERM");
    const exit = await node.exited;
    expect(exit.code).toBe(4);
    expect(node.output()).toContain("forced shutdown; handlers still running: stubborn:two");
  }, 60_000);
});

describe("a misbehaving handler does not take the node down", () => {
  test("a stray asynchronous throw is logged and the node keeps running its other tasks", async () => {
    const ws = workspace({
      "worker.ts": HANDLERS.worker,
      "stray.ts": `export default { async run(task, ctx) { setTimeout(() => { throw new Error("stray boom from " + task.id); }, 10); await new Promise((r) => ctx.signal.addEventListener("abort", r)); return "release"; } };`,
    });
    const env = await httpEnv();
    const node = startNode(bin, { cwd: ws.dir, env });
    cleanups.push(() => node.stop());
    await node.waitReady(`http://${env.METAFORA_HTTP}`);
    expect((await runCli(bin, ["submit", "stray:x"], { cwd: ws.dir, env })).code).toBe(0);
    await node.waitOutput("uncaught exception (the node keeps running)");
    expect(node.output()).toContain("stray boom from stray:x");
    expect((await runCli(bin, ["submit", "worker:after"], { cwd: ws.dir, env })).code).toBe(0);
    await node.waitOutput("started worker:after");
    node.signal("SIGTERM");
    expect((await node.exited).code).toBe(0);
  }, 60_000);
});
