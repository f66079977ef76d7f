/**
 * Bulk submits as operators make them: `metafora submit --file tasks.jsonl` (against an
 * embedded node through its HTTP API, and against etcd directly) and the HTTP API's
 * `POST /api/tasks {"tasks": [...]}` form, with per-task results and errors naming the line.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cac } from "cac";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EtcdClient } from "../../src/coordinators/etcd/client.ts";
import { silentLogger } from "../../src/log.ts";
import { loadConfig } from "../../src/runtime/config/load.ts";
import type { RuntimeConfig } from "../../src/runtime/config/schema.ts";
import { registerOperatorCommands } from "../../src/runtime/cli/operator-commands.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { startOpsNode, type OpsNode } from "./ops-fixture.ts";

const cwd = mkdtempSync(join(tmpdir(), "metafora-bulk-"));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

async function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  let code = -1;
  const cli = cac("metafora");
  registerOperatorCommands(cli, {
    loadConfig: (): Promise<RuntimeConfig> => loadConfig({ env, cwd, isTTY: false }),
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    setExitCode: (c) => (code = c),
    now: () => Date.now(),
  });
  cli.parse(["bun", "metafora", ...args], { run: false });
  await cli.runMatchedCommand();
  return { code, out, err };
}

function file(name: string, lines: string[]): string {
  const path = join(cwd, name);
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

describe("against an embedded node (HTTP API)", () => {
  let node: OpsNode;
  let env: Record<string, string>;
  let base: string;
  beforeAll(async () => {
    node = await startOpsNode({ token: "tok" });
    base = `http://127.0.0.1:${node.server.address.port}`;
    env = { METAFORA_HTTP: `127.0.0.1:${node.server.address.port}`, METAFORA_TOKEN: "tok" };
  });
  afterAll(async () => {
    await node.close();
  });

  test("submit --file creates every task, reports those that existed, and keeps props and handler", async () => {
    expect((await runCli(["submit", "work:f0"], env)).code).toBe(0);
    const path = file("a.jsonl", [
      '{"id":"work:f0"}',
      "",
      '{"id":"work:f1","props":{"n":1}}',
      '{"id":"x:f2","handler":"work"}',
    ]);
    const run = await runCli(["submit", "--file", path], env);
    expect(run).toMatchObject({ code: 0, err: "" });
    expect(run.out).toBe("submitted 2 task(s); 1 already existed and were left unchanged: work:f0\n");
    const json = JSON.parse((await runCli(["submit", "--file", path, "--json"], env)).out);
    expect(json).toEqual({
      created: 0,
      exists: 3,
      results: ["work:f0", "work:f1", "x:f2"].map((id) => ({ id, result: "exists" })),
    });
    const tasks = await node.services.client.tasks();
    expect(tasks.find((t) => t.id === "work:f1")?.props).toEqual({ n: 1 });
    expect(tasks.find((t) => t.id === "x:f2")?.props).toEqual({ handler: "work" });
  });

  test("a bad line is a usage error naming the line, and nothing is submitted", async () => {
    const path = file("bad.jsonl", ['{"id":"work:g1"}', '{"id":"work:g2"', '{"id":"work:g3"}']);
    const bad = await runCli(["submit", "--file", path], env);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("bad.jsonl line 2: not JSON");
    const dup = await runCli(["submit", "--file", file("dup.jsonl", ['{"id":"work:g1"}', '{"id":"work:g1"}'])], env);
    expect(dup.code).toBe(2);
    expect(dup.err).toContain('line 2: task id "work:g1" also appears at');
    const shape = await runCli(["submit", "--file", file("shape.jsonl", ['{"id":"work:g1","prop":{}}'])], env);
    expect(shape.err).toContain('line 1: unknown field "prop"');
    expect((await runCli(["submit", "--file", join(cwd, "missing.jsonl")], env)).err).toContain(
      "cannot read tasks file",
    );
    expect((await runCli(["submit", "work:g9", "--file", path], env)).code).toBe(2);
    expect((await node.services.client.tasks()).some((t) => t.id.startsWith("work:g"))).toBe(false);
  });

  test('POST /api/tasks {"tasks": [...]} answers per task; bad items are 400 and create nothing', async () => {
    const post = (body: unknown) =>
      fetch(`${base}/api/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer tok" },
        body: JSON.stringify(body),
      });
    const res = await post({ tasks: [{ id: "work:h1" }, { id: "work:h2", props: { a: 1 } }, { id: "work:h1x" }] });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      results: [
        { id: "work:h1", result: "created" },
        { id: "work:h2", result: "created" },
        { id: "work:h1x", result: "created" },
      ],
      created: 3,
      exists: 0,
    });
    const again = await post({ tasks: [{ id: "work:h1" }, { id: "work:h3" }] });
    expect((await again.json()) as { created: number; exists: number }).toMatchObject({ created: 1, exists: 1 });
    const bad = await post({ tasks: [{ id: "work:h4" }, { id: "a/b" }] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toContain("tasks[1]");
    expect((await post({ tasks: "x" })).status).toBe(400);
    expect((await node.services.client.tasks()).some((t) => t.id === "work:h4")).toBe(false);
  });
});

describe("against etcd (direct)", () => {
  let etcd: EtcdServer;
  const ns = `/bulk-cli-${process.pid}`;
  beforeAll(async () => {
    etcd = await startEtcd();
  }, 30_000);
  afterAll(async () => {
    await etcd?.stop();
  });

  test("submit --file of 1,000 tasks uses batched transactions and reports ids that existed", async () => {
    const env = { METAFORA_ETCD_ENDPOINTS: etcd.endpoint, METAFORA_NAMESPACE: ns, METAFORA_NODE: "operator" };
    const client = EtcdClient.connect({ endpoints: [etcd.endpoint], namespace: ns }, { log: silentLogger });
    try {
      await client.submitTask("job:0500", { old: true });
      const lines = Array.from({ length: 1000 }, (_, i) =>
        JSON.stringify({ id: `job:${String(i).padStart(4, "0")}`, props: { i } }),
      );
      const run = await runCli(["submit", "--file", file("big.jsonl", lines)], env);
      expect(run.err).toBe("");
      expect(run.out).toBe("submitted 999 task(s); 1 already existed and were left unchanged: job:0500\n");
      const tasks = await client.tasks();
      expect(tasks.length).toBe(1000);
      expect(tasks.find((t) => t.id === "job:0500")?.props).toEqual({ old: true });
      expect(tasks.find((t) => t.id === "job:0999")?.props).toEqual({ i: 999 });
    } finally {
      client.close();
    }
  });
});
