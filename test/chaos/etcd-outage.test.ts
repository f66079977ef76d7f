/**
 * etcd going silent (SIGSTOP) or dying (SIGKILL, restart on the same data dir) under running
 * consumers: handlers stop by the recorded claim deadline, before the lease can have expired;
 * nodes never crash, rejoin with new leases, and every task ends up running exactly once.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { sleep, waitFor } from "../support/wait.ts";
import { RunLedger, startNode, type TestNode } from "../etcd/cluster.ts";
import { Cleanup, makeClient, makeCoordinator, rawClient, RecordingContext, uniqueNamespace } from "../etcd/helpers.ts";
import { Keys } from "../../src/coordinators/etcd/keys.ts";

let etcd: EtcdServer;
const cleanup = new Cleanup();
beforeAll(async () => {
  etcd = await startEtcd();
});
afterEach(async () => {
  etcd.resume(); // never leave it stopped for the next test
  await cleanup.run();
});
afterAll(async () => {
  await etcd?.stop();
});

const TTL = 3;

interface Suspension {
  node: string;
  deadline: number;
  /** Last confirmed renewal (by send time) when the node suspended: etcd expires the lease no earlier than this + TTL. */
  lastRenewal: number;
  ttlMs: number;
}

function recordSuspensions(nodes: TestNode[]): Suspension[] {
  const out: Suspension[] = [];
  for (const n of nodes) {
    n.coordinator.on("suspended", ({ deadline }) => {
      const stats = n.coordinator.stats();
      out.push({ node: n.name, deadline, lastRenewal: stats.lastRenewal!, ttlMs: stats.leaseTtlSeconds! * 1000 });
    });
  }
  return out;
}

async function twoNodesRunning(label: string, count: number) {
  const ns = uniqueNamespace(label);
  const ledger = new RunLedger();
  const client = makeClient(etcd, ns, cleanup);
  const nodes = [
    await startNode(etcd, ns, "node1", ledger, cleanup, { leaseTtl: TTL }),
    await startNode(etcd, ns, "node2", ledger, cleanup, { leaseTtl: TTL }),
  ];
  const ids = Array.from({ length: count }, (_, i) => `${label}-${i}`);
  for (const id of ids) await client.submitTask(id);
  await waitFor(`${count} tasks running once`, () => ledger.eachRunningOnce(ids), { timeout: 10_000 });
  return { ledger, nodes, ids, client };
}

test("etcd paused longer than the TTL: handlers stop by the recorded deadline, which precedes lease expiry; then all run once again", async () => {
  const { ledger, nodes, ids } = await twoNodesRunning("pause", 6);
  const suspensions = recordSuspensions(nodes);
  const leasesBefore = nodes.map((n) => n.coordinator.stats().leaseId);
  const runsBefore = ledger.runs.length;
  const pausedAt = Date.now();
  etcd.pause();
  await waitFor(
    "both nodes to suspend and stop every handler",
    () => suspensions.length === 2 && ledger.runningCount() === 0,
    { timeout: 8000 },
  );
  for (const s of suspensions) {
    // Stopped by the deadline...
    const stops = ledger.runs
      .slice(0, runsBefore)
      .filter((r) => r.node === s.node)
      .map((r) => r.stopped!);
    expect(stops.length).toBeGreaterThan(0);
    for (const stopped of stops) expect(stopped).toBeLessThanOrEqual(s.deadline);
    // ...and the deadline comes before etcd can expire the lease.
    expect(s.deadline).toBeLessThan(s.lastRenewal + s.ttlMs);
    expect(s.lastRenewal).toBeLessThanOrEqual(pausedAt + 50);
  }
  expect(ledger.runs.slice(0, runsBefore).every((r) => r.reason === "lease")).toBe(true);
  // Keep etcd silent past the TTL (the fault lasts this long by design), then let it answer.
  await sleep(Math.max(0, pausedAt + TTL * 1000 + 1000 - Date.now()));
  etcd.resume();
  await waitFor("every task running exactly once again", () => ledger.eachRunningOnce(ids), { timeout: 20_000 });
  await waitFor("both nodes active on new leases", () =>
    nodes.every(
      (n, i) => n.coordinator.stats().state === "active" && n.coordinator.stats().leaseId !== leasesBefore[i],
    ),
  );
  expect(nodes.every((n) => n.consumer.state === "running")).toBe(true);
  expect(ledger.overlaps).toEqual([]);
});

test("etcd silent for less than the stop point: the node makes no claim until a keepalive is confirmed again, and its handlers never stop", async () => {
  const ns = uniqueNamespace("doubt");
  // TTL 15 s: margin 3 s, doubt after 6 s without a confirmed keepalive, suspension after 9 s.
  const c = makeCoordinator({ etcd, namespace: ns, node: "n", cleanup, config: { leaseTtl: 15 } });
  const ctx = new RecordingContext("n");
  const order: string[] = [];
  let doubtAt = 0;
  c.on("doubt", () => {
    doubtAt = Date.now();
    order.push("doubt");
  });
  c.on("reassured", () => order.push("reassured"));
  c.on("suspended", () => order.push("suspended"));
  await c.init(ctx);
  const client = makeClient(etcd, ns, cleanup);
  await client.submitTask("held");
  await client.submitTask("later");
  const held = await waitFor("a claim", () => c.claim({ id: "held", props: {} }));
  const lease = c.stats().leaseId;

  etcd.pause();
  await waitFor("the lease to be in doubt", () => doubtAt > 0, { timeout: 15_000 });
  // Asked during the doubt, the claim waits for it to end instead of adding to etcd's load.
  const later = c.claim({ id: "later", props: {} }).then((claim) => {
    order.push("claimed");
    return claim;
  });
  await waitFor("the claim to wait for the doubt to end", () => c.stats().claimsWaiting === 1);
  etcd.resume();
  expect(await later).toBeDefined();
  expect(order).toEqual(["doubt", "reassured", "claimed"]);
  expect(ctx.suspends).toEqual([]); // handlers never told to stop
  expect(c.stats().leaseId).toBe(lease);
  expect(c.stats().state).toBe("active");
  const owner = await rawClient(etcd, cleanup).get(new Keys(ns).owner("held")).exec();
  expect(Number(owner.kvs[0]?.create_revision)).toBe(held.token); // the running claim stood throughout
});

test("etcd killed and restarted on its data dir while tasks run: nodes survive and every task runs exactly once", async () => {
  const { ledger, nodes, ids, client } = await twoNodesRunning("restart", 10);
  await etcd.kill();
  // Down long enough for keepalives to be overdue (the nodes suspend), then back.
  await sleep(TTL * 1000);
  await etcd.restart();
  await waitFor("every task running exactly once again", () => ledger.eachRunningOnce(ids), { timeout: 30_000 });
  await waitFor("both nodes active", () => nodes.every((n) => n.coordinator.stats().state === "active"), {
    timeout: 10_000,
  });
  expect(nodes.every((n) => n.consumer.state === "running")).toBe(true);
  expect(ledger.overlaps).toEqual([]);
  const infos = await client.tasks();
  expect(infos.length).toBe(ids.length);
  expect(infos.every((t) => t.owner === "node1" || t.owner === "node2")).toBe(true);
  expect(await client.nodes()).toEqual(["node1", "node2"]);
});

test("close never hangs on a silent etcd: the lease revoke is bounded by the request timeout", async () => {
  const ns = uniqueNamespace("close-silent");
  const c = makeCoordinator({ etcd, namespace: ns, node: "n", cleanup, config: { requestTimeout: 1000 } });
  await c.init(new RecordingContext("n"));
  etcd.pause();
  const t0 = Date.now();
  await c.close();
  expect(Date.now() - t0).toBeLessThan(4000);
  expect(c.stats().state).toBe("closed");
  etcd.resume();
});
