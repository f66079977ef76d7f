/**
 * Failover between two consumers holding 100 tasks: a graceful shutdown hands everything to
 * the other node within 2 s; a SIGKILLed node (a child process) loses everything to the other
 * within TTL + 2 s, and no task ever runs twice at once on the surviving side.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { waitFor } from "../support/wait.ts";
import { RunLedger, startNode } from "../etcd/cluster.ts";
import { Cleanup, makeClient, uniqueNamespace } from "../etcd/helpers.ts";

let etcd: EtcdServer;
const cleanup = new Cleanup();
beforeAll(async () => {
  etcd = await startEtcd();
});
afterEach(() => cleanup.run());
afterAll(async () => {
  await etcd?.stop();
});

const TTL = 3;
const ids = Array.from({ length: 100 }, (_, i) => `job-${String(i).padStart(3, "0")}`);

test("graceful shutdown of one of two nodes: all 100 tasks run on the other within 2 s", async () => {
  const ns = uniqueNamespace("graceful");
  const ledger = new RunLedger();
  const client = makeClient(etcd, ns, cleanup);
  const a = await startNode(etcd, ns, "node-a", ledger, cleanup, { leaseTtl: TTL });
  await startNode(etcd, ns, "node-b", ledger, cleanup, { leaseTtl: TTL });
  await Promise.all(ids.map((id) => client.submitTask(id)));
  await waitFor(
    "100 tasks running once, on both nodes",
    () => ledger.eachRunningOnce(ids) && ledger.runningOn("node-a").length > 0 && ledger.runningOn("node-b").length > 0,
    {
      timeout: 20_000,
    },
  );
  const moving = ledger.runningOn("node-a").length;
  const t0 = Date.now();
  const report = await a.consumer.shutdown({ timeout: 5000 });
  expect(report).toEqual({ clean: true, stuck: [] });
  await waitFor("node-b to run all 100", () => ledger.runningOn("node-b").length === 100, { timeout: 10_000 });
  const elapsed = Date.now() - t0;
  console.log(`graceful handoff of ${moving} tasks: ${elapsed} ms`);
  expect(elapsed).toBeLessThanOrEqual(2000);
  expect(ledger.eachRunningOnce(ids)).toBe(true);
  expect(ledger.overlaps).toEqual([]);
});

test("SIGKILL of a node (child process): all its tasks run on the other within TTL + 2 s", async () => {
  const ns = uniqueNamespace("sigkill");
  const ledger = new RunLedger();
  const client = makeClient(etcd, ns, cleanup);
  const child: ChildProcess = spawn(
    process.execPath,
    [join(import.meta.dir, "fixtures", "child-consumer.ts"), etcd.endpoint, ns, "doomed", String(TTL)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  cleanup.add(child, (c) => c.exitCode === null && c.signalCode === null && c.kill("SIGKILL"));
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  await waitFor("the child consumer to register", () => output.includes("ready"), { timeout: 15_000 });
  await startNode(etcd, ns, "survivor", ledger, cleanup, { leaseTtl: TTL });
  await Promise.all(ids.map((id) => client.submitTask(id)));
  const owners = async () => {
    const counts = new Map<string, number>();
    for (const t of await client.tasks()) if (t.owner) counts.set(t.owner, (counts.get(t.owner) ?? 0) + 1);
    return counts;
  };
  await waitFor(
    "all 100 claimed, some by the child",
    async () => {
      const c = await owners();
      return (c.get("doomed") ?? 0) > 0 && (c.get("doomed") ?? 0) + (c.get("survivor") ?? 0) === 100;
    },
    { timeout: 20_000 },
  );
  const lostCount = (await owners()).get("doomed")!;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const t0 = Date.now();
  child.kill("SIGKILL");
  await exited;
  await waitFor("the survivor to run all 100", () => ledger.runningOn("survivor").length === 100, {
    timeout: (TTL + 10) * 1000,
  });
  const elapsed = Date.now() - t0;
  console.log(`failover of ${lostCount} tasks after SIGKILL (TTL ${TTL} s): ${elapsed} ms`);
  expect(elapsed).toBeLessThanOrEqual(TTL * 1000 + 2000);
  expect(ledger.overlaps).toEqual([]);
  expect(await client.nodes()).toEqual(["survivor"]);
});
