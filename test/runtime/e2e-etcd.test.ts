/**
 * End-to-end, etcd coordinator: two compiled binaries against a real etcd share the tasks;
 * SIGKILL one and the other takes them all once the dead node's lease expires.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { freePort } from "../support/ports.ts";
import { waitFor } from "../support/wait.ts";
import { metaforaBinary } from "./support/binary.ts";
import { runCli, startNode, type NodeProcess } from "./support/node.ts";
import { HANDLERS, makeWorkspace, type Workspace } from "./support/workspace.ts";

let bin: string;
let etcd: EtcdServer;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [bin, etcd] = await Promise.all([metaforaBinary(), startEtcd()]);
}, 240_000);

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await etcd?.stop();
});

interface TaskRow {
  id: string;
  owner?: string;
}

describe("etcd coordinator, compiled binaries", () => {
  test("two nodes split the tasks; SIGKILL one and the other takes them all", async () => {
    const ws: Workspace = makeWorkspace({ "worker.ts": HANDLERS.worker });
    cleanups.push(() => ws.remove());
    // One variable points a node at the cluster (it implies coordinator = etcd).
    const cluster = {
      METAFORA_ETCD_ENDPOINTS: etcd.endpoint,
      METAFORA_NAMESPACE: `/e2e-${Date.now()}`,
      METAFORA_LEASE_TTL: "3s",
      METAFORA_SHUTDOWN_TIMEOUT: "10s",
    };
    const start = async (name: string): Promise<{ node: NodeProcess; url: string }> => {
      const port = await freePort();
      const node = startNode(bin, {
        cwd: ws.dir,
        env: { ...cluster, METAFORA_NODE: name, METAFORA_HTTP: `127.0.0.1:${port}` },
      });
      cleanups.push(() => node.stop());
      return { node, url: `http://127.0.0.1:${port}` };
    };
    const a = await start("a");
    const b = await start("b");
    await Promise.all([a.node.waitReady(a.url), b.node.waitReady(b.url)]);

    // Against etcd the CLI talks to etcd directly.
    const cli = (...args: string[]) => runCli(bin, args, { cwd: ws.dir, env: cluster });
    const ids = Array.from({ length: 12 }, (_, i) => `worker:t${i}`);
    for (const id of ids) expect((await cli("submit", id)).code).toBe(0);
    const tasks = async (): Promise<TaskRow[]> => {
      const res = await cli("tasks", "--json");
      if (res.code !== 0) throw new Error(`tasks failed: ${res.stderr}`);
      const parsed = JSON.parse(res.stdout) as TaskRow[] | { tasks: TaskRow[] };
      return Array.isArray(parsed) ? parsed : parsed.tasks;
    };
    const owners = async (): Promise<Map<string, string[]>> => {
      const byOwner = new Map<string, string[]>();
      for (const t of await tasks()) if (t.owner) byOwner.set(t.owner, [...(byOwner.get(t.owner) ?? []), t.id]);
      return byOwner;
    };

    const split = await waitFor(
      "all 12 tasks running, on both nodes",
      async () => {
        const o = await owners();
        const total = (o.get("a")?.length ?? 0) + (o.get("b")?.length ?? 0);
        return total === 12 && (o.get("a")?.length ?? 0) > 0 && (o.get("b")?.length ?? 0) > 0 ? o : undefined;
      },
      { timeout: 30_000, interval: 250 },
    );
    expect(split.get("a")!.length + split.get("b")!.length).toBe(12);
    expect((await cli("nodes", "--json")).stdout).toContain('"a"');

    const killedAt = Date.now();
    a.node.signal("SIGKILL");
    expect((await a.node.exited).signal).toBe("SIGKILL");
    await waitFor(
      "every task running on b",
      async () => {
        const o = await owners();
        return o.get("b")?.length === 12;
      },
      { timeout: 30_000, interval: 200 },
    );
    const failoverMs = Date.now() - killedAt;
    console.log(`failover after SIGKILL with lease_ttl 3s: all tasks on b after ${failoverMs} ms`);

    b.node.signal("SIGTERM");
    expect((await b.node.exited).code).toBe(0);
    // b released everything on the way out (and its lease is revoked): nobody owns a task.
    const after = await tasks();
    expect(after.map((t) => t.id).sort()).toEqual([...ids].sort());
    expect(after.filter((t) => t.owner)).toEqual([]);
  }, 120_000);

  test("a second node with a live node's name refuses to start (exit 78)", async () => {
    const ws = makeWorkspace({ "worker.ts": HANDLERS.worker });
    cleanups.push(() => ws.remove());
    const env = {
      METAFORA_ETCD_ENDPOINTS: etcd.endpoint,
      METAFORA_NAMESPACE: `/e2e-dup-${Date.now()}`,
      METAFORA_NODE: "same",
    };
    const port = await freePort();
    const first = startNode(bin, { cwd: ws.dir, env: { ...env, METAFORA_HTTP: `127.0.0.1:${port}` } });
    cleanups.push(() => first.stop());
    await first.waitReady(`http://127.0.0.1:${port}`);
    const second = await runCli(bin, ["run"], {
      cwd: ws.dir,
      env: { ...env, METAFORA_HTTP: `127.0.0.1:${await freePort()}` },
    });
    expect(second.code).toBe(78);
    expect(second.stdout + second.stderr).toContain('node name \\"same\\" is already live');
    first.signal("SIGTERM");
    expect((await first.exited).code).toBe(0);
  }, 60_000);

  test("etcd unreachable at start-up: exit 69", async () => {
    const ws = makeWorkspace({ "worker.ts": HANDLERS.worker });
    cleanups.push(() => ws.remove());
    const deadPort = await freePort();
    const res = await runCli(bin, ["run"], {
      cwd: ws.dir,
      env: {
        METAFORA_ETCD_ENDPOINTS: `127.0.0.1:${deadPort}`,
        METAFORA_ETCD_DIAL_TIMEOUT: "1s",
        METAFORA_HTTP: "off",
        METAFORA_NODE: "x",
      },
      timeout: 60_000,
    });
    expect(res.code).toBe(69);
    expect(res.stdout + res.stderr).toContain("cannot join via etcd");
  }, 90_000);
});
