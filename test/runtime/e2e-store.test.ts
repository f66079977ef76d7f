/**
 * End-to-end, the embedded coordinator's database with the compiled binary: damage to the
 * data dir refuses the start with exit 78 naming the file (never a quiet start with less),
 * `store check` / `store export` work on what is left, and task history survives restarts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../support/ports.ts";
import { waitFor } from "../support/wait.ts";
import { metaforaBinary } from "./support/binary.ts";
import { runCli, startNode, type NodeProcess } from "./support/node.ts";
import { HANDLERS, makeWorkspace, type Workspace } from "./support/workspace.ts";

let bin: string;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  bin = await metaforaBinary();
}, 240_000);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function workspace(): Promise<{
  ws: Workspace;
  url: string;
  env: Record<string, string>;
  start(dataDir?: string): NodeProcess;
}> {
  const ws = makeWorkspace({ "worker.ts": HANDLERS.worker });
  cleanups.push(() => ws.remove());
  const port = await freePort();
  const env = { METAFORA_HTTP: `127.0.0.1:${port}`, METAFORA_NODE: "n1" };
  return {
    ws,
    url: `http://127.0.0.1:${port}`,
    env,
    start(dataDir = join(ws.dir, ".metafora")) {
      const node = startNode(bin, { cwd: ws.dir, env: { ...env, METAFORA_DATA_DIR: dataDir } });
      cleanups.push(() => node.stop());
      return node;
    },
  };
}

async function submit(url: string, id: string): Promise<void> {
  const res = await fetch(`${url}/api/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id, props: { pad: "p".repeat(80) } }),
  });
  expect(res.status).toBe(201);
}

/** Start a node on `dataDir` and expect it to refuse: exit 78, the message naming `file`. */
async function refused(start: () => NodeProcess, file: string): Promise<string> {
  const node = start();
  const exit = await node.exited;
  expect(exit.code).toBe(78);
  expect(node.output()).toContain(file);
  return node.output();
}

describe("embedded database damage, compiled binary", () => {
  test("flipped bytes, a truncated file, a deleted database, a WAL removed or damaged after kill -9: each refused with exit 78 naming the file", async () => {
    const s = await workspace();
    const base = join(s.ws.dir, ".metafora");
    const node = s.start(base);
    await node.waitReady(s.url);
    for (let i = 0; i < 100; i++) await submit(s.url, `worker:d${String(i).padStart(3, "0")}`);
    node.signal("SIGTERM");
    expect((await node.exited).code).toBe(0);
    const variant = (name: string, from = base): string => {
      const dir = join(s.ws.dir, name);
      cpSync(from, dir, { recursive: true });
      rmSync(join(dir, "lock"), { force: true });
      return dir;
    };

    const flipped = variant("flipped");
    const db = join(flipped, "metafora.db");
    const bytes = readFileSync(db);
    let hits = 0;
    for (let at = bytes.indexOf("worker:d042"); at >= 0; at = bytes.indexOf("worker:d042", at + 1), hits++)
      bytes[at + 9] = "7".charCodeAt(0);
    expect(hits).toBeGreaterThan(0);
    writeFileSync(db, bytes);
    const out = await refused(() => s.start(flipped), db);
    expect(out).toContain("store export");

    // The operator's tools on the damaged database.
    const check = await runCli(bin, ["store", "check"], { cwd: s.ws.dir, env: { METAFORA_DATA_DIR: flipped } });
    expect(check.code).toBe(78);
    expect(check.stdout).toContain("does not match its checksum");
    const exported = await runCli(bin, ["store", "export"], { cwd: s.ws.dir, env: { METAFORA_DATA_DIR: flipped } });
    expect(exported.code).toBe(0);
    const rows = exported.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; id: string; damaged?: boolean });
    expect(rows.filter((r) => r.type === "task").length).toBe(100);
    expect(rows.filter((r) => r.damaged).map((r) => r.id)).toEqual(["worker:d072"]);
    expect((await runCli(bin, ["store", "check"], { cwd: s.ws.dir, env: { METAFORA_DATA_DIR: base } })).code).toBe(0);

    const truncated = variant("truncated");
    truncateSync(join(truncated, "metafora.db"), Math.floor(statSync(join(truncated, "metafora.db")).size / 2));
    await refused(() => s.start(truncated), join(truncated, "metafora.db"));

    const deleted = variant("deleted");
    rmSync(join(deleted, "metafora.db"));
    const gone = await refused(() => s.start(deleted), join(deleted, "metafora.db"));
    expect(gone).toContain("is missing");

    // kill -9 under load leaves commits in the WAL; removing it must not start with less.
    const crashed = join(s.ws.dir, "crashed");
    const live = s.start(crashed);
    await live.waitReady(s.url);
    for (let i = 0; i < 50; i++) await submit(s.url, `worker:c${i}`);
    live.signal("SIGKILL");
    await live.exited;
    const walless = variant("crashed-walless", crashed);
    rmSync(join(walless, "metafora.db-wal"));
    await refused(() => s.start(walless), join(walless, "metafora.db-wal"));
    // A WAL damaged in its first frame (committed frames follow): SQLite would drop them all.
    const damagedWal = variant("crashed-damaged-wal", crashed);
    const walFile = join(damagedWal, "metafora.db-wal");
    const wal = readFileSync(walFile);
    expect(wal.length).toBeGreaterThan(32 + 24 + 4096 * 2);
    wal[32 + 24 + 200] = wal[32 + 24 + 200]! ^ 0xff;
    writeFileSync(walFile, wal);
    await refused(() => s.start(damagedWal), walFile);
    // The crashed data dir itself, WAL intact, restarts with everything.
    const again = s.start(crashed);
    await again.waitReady(s.url);
    const tasks = ((await (await fetch(`${s.url}/api/tasks`)).json()) as { tasks: Array<{ id: string }> }).tasks;
    expect(tasks.length).toBe(50);
    again.signal("SIGTERM");
    expect((await again.exited).code).toBe(0);
  }, 120_000);

  test("a journal-format data dir (fixture written by the former code) is imported on first start, kept aside, and runs", async () => {
    const s = await workspace();
    s.ws.writeHandler(
      "job.ts",
      `import { defineStatefulHandler } from "metafora";
export default defineStatefulHandler({ async run(task, ctx) { ctx.log.info("job started " + task.id); const n = await ctx.commands[Symbol.asyncIterator]().next(); return n.done ? "release" : n.value; } });`,
    );
    const dir = join(s.ws.dir, ".metafora");
    cpSync(join(import.meta.dir, "fixtures/journal-v1"), dir, { recursive: true });
    rmSync(join(dir, "README.md"));
    const node = s.start(dir);
    await node.waitReady(s.url);
    expect(node.output()).toContain("imported the journal-format data");
    expect(node.output()).toContain("journal-backup-");
    const tasks = (
      (await (await fetch(`${s.url}/api/tasks`)).json()) as {
        tasks: Array<{ id: string; token?: number; owner?: string }>;
      }
    ).tasks;
    expect(tasks.length).toBe(9);
    // The waiting pause from before the import is applied; tokens continue above the old ceiling.
    await waitFor("job:commanded paused", async () => {
      const st = (await (await fetch(`${s.url}/api/tasks/job:commanded/state`)).json()) as { state?: { code: string } };
      return st.state?.code === "paused";
    });
    const owned = await waitFor("tasks claimed", async () => {
      const rows = ((await (await fetch(`${s.url}/api/tasks`)).json()) as { tasks: Array<{ token?: number }> }).tasks;
      return rows.filter((t) => t.token !== undefined).length >= 5 ? rows : undefined;
    });
    for (const t of owned) if (t.token !== undefined) expect(t.token).toBeGreaterThan(30_000);
    node.signal("SIGTERM");
    expect((await node.exited).code).toBe(0);
    const again = s.start(dir);
    await again.waitReady(s.url);
    expect(again.output()).not.toContain("imported");
    expect(again.output()).toContain("9 task(s)");
    again.signal("SIGTERM");
    expect((await again.exited).code).toBe(0);
  }, 60_000);

  test("task history is persisted: `metafora task <id>` shows submitted, claimed (node, token), released and attempts across a restart", async () => {
    const s = await workspace();
    const node = s.start();
    await node.waitReady(s.url);
    const cli = (...args: string[]) => runCli(bin, args, { cwd: s.ws.dir, env: s.env });
    expect((await cli("submit", "worker:h")).code).toBe(0);
    await node.waitOutput("started worker:h");
    node.signal("SIGTERM");
    expect((await node.exited).code).toBe(0);
    const again = s.start();
    await again.waitReady(s.url);
    await again.waitOutput("started worker:h");
    const detail = await waitFor("two claims in the history", async () => {
      const d = JSON.parse((await cli("task", "worker:h", "--json")).stdout) as {
        task: { attempts?: number; owner?: string; token?: number };
        history: Array<{ kind: string; node?: string; token?: number; reason?: string }>;
      };
      return d.task.attempts === 2 && d.task.owner === "n1" ? d : undefined;
    });
    expect(detail.history.map((e) => e.kind)).toEqual(["submitted", "claimed", "released", "claimed"]);
    expect(detail.history[1]).toMatchObject({ node: "n1" });
    expect(detail.history[2]).toMatchObject({ reason: "shutdown" });
    expect(detail.history[3]!.token).toBe(detail.task.token);
    expect(detail.history[3]!.token!).toBeGreaterThan(detail.history[1]!.token!);
    const table = await cli("tasks");
    expect(table.stdout).toMatch(/\nworker:h\s+n1\s+\d+\s+worker\s+running\s+2\/0\s+-\s+-/);
    again.signal("SIGTERM");
    expect((await again.exited).code).toBe(0);
  }, 60_000);
});
