/**
 * Consumers on etcd coordinators: balancing (Go Metafora's tests T36–T38), lost claims (owner key deleted,
 * lease revoked from outside) and rejoining. Real etcd, real consumers, FairBalancer.
 */
import { afterEach, expect, test } from "bun:test";
import { FairBalancer } from "../../src/balancers/fair.ts";
import { balance } from "../../src/command.ts";
import { Keys } from "../../src/coordinators/etcd/keys.ts";
import type { Balancer, BalancerContext, ClusterState } from "../../src/types.ts";
import { useEtcd } from "../support/use-etcd.ts";
import { staysFalse, waitFor } from "../support/wait.ts";
import { RunLedger, startNode, type TestNode } from "./cluster.ts";
import { Cleanup, makeClient, rawClient, uniqueNamespace } from "./helpers.ts";

const etcd = useEtcd();
const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const ids = (n: number, prefix = "task") =>
  Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`);

/**
 * Wait until `by` counts `name` in its shares: a node is counted once it has listed the tasks
 * and marked its registration ready, which the others see shortly after its start resolves.
 */
async function counts(by: TestNode, name: string): Promise<void> {
  await waitFor(`${by.name} to count ${name}`, () => by.coordinator.cluster.nodeTaskCounts().has(name));
}

test("T36: a balance command to the busy node spreads 6 tasks 4|2; one sent to another name changes nothing", async () => {
  const ns = uniqueNamespace("t36");
  const ledger = new RunLedger();
  const client = makeClient(etcd, ns, cleanup);
  const n1 = await startNode(etcd, ns, "node1", ledger, cleanup);
  for (const id of ids(6)) await client.submitTask(id);
  await waitFor("6 tasks on node1", () => ledger.runningOn("node1").length === 6);
  await startNode(etcd, ns, "node2", ledger, cleanup);
  await counts(n1, "node2");
  await client.submitCommand("node3", balance());
  await staysFalse("tasks to move without a balance", () => ledger.runningOn("node2").length > 0, 500);
  await client.submitCommand("node1", balance());
  await waitFor("4|2", () => ledger.runningOn("node1").length === 4 && ledger.runningOn("node2").length === 2, {
    timeout: 5000,
  });
  expect(ledger.overlaps).toEqual([]);
});

test("T37: a balancer whose cluster view counts only its own node releases nothing", async () => {
  const ns = uniqueNamespace("t37");
  const ledger = new RunLedger();
  const client = makeClient(etcd, ns, cleanup);
  // Go's filter argument, done by composition: the FairBalancer sees a view filtered to itself.
  const selfOnly = (node: string): Balancer => {
    const fair = new FairBalancer();
    return {
      init(ctx: BalancerContext) {
        const cluster: ClusterState = {
          nodeTaskCounts: () => new Map([...ctx.cluster.nodeTaskCounts()].filter(([name]) => name === node)),
          unclaimedCount: () => ctx.cluster.unclaimedCount(),
        };
        fair.init({ ...ctx, cluster, node: ctx.node, tasks: () => ctx.tasks() });
      },
      canClaim: (task) => fair.canClaim(task),
      balance: () => fair.balance(),
    };
  };
  const n1 = await startNode(etcd, ns, "node1", ledger, cleanup, { consumer: { balancer: selfOnly("node1") } });
  for (const id of ids(9)) await client.submitTask(id);
  await waitFor("9 tasks on node1", () => ledger.runningOn("node1").length === 9);
  await startNode(etcd, ns, "node2", ledger, cleanup, { consumer: { balancer: selfOnly("node2") } });
  expect(await n1.consumer.balanceNow()).toEqual([]);
  await staysFalse("node2 to get a task", () => ledger.runningOn("node2").length > 0, 500);
});

test("T38: shutting down a node with a stuck task: 4|2, then 5|1 while it is stuck, then 6|0", async () => {
  const ns = uniqueNamespace("t38");
  const ledger = new RunLedger();
  const client = makeClient(etcd, ns, cleanup);
  const n1 = await startNode(etcd, ns, "node1", ledger, cleanup);
  for (const id of ids(6)) await client.submitTask(id);
  await waitFor("6 tasks on node1", () => ledger.runningOn("node1").length === 6);
  const n2 = await startNode(etcd, ns, "node2", ledger, cleanup);
  await counts(n1, "node2");
  await n1.consumer.balanceNow();
  await waitFor("4|2", () => ledger.runningOn("node1").length === 4 && ledger.runningOn("node2").length === 2, {
    timeout: 5000,
  });

  const [stuck] = ledger.runningOn("node2");
  ledger.stick(stuck!);
  const shutdown = n2.consumer.shutdown({ timeout: 20_000 });
  await waitFor(
    "5|1 while node2 waits for its stuck task",
    () => ledger.runningOn("node1").length === 5 && ledger.runningOn("node2").length === 1,
    {
      timeout: 8000,
    },
  );
  await n1.consumer.balanceNow();
  await waitFor(
    "5|1 after a balance",
    () => ledger.runningOn("node1").length === 5 && ledger.runningOn("node2").length === 1,
    { timeout: 8000 },
  );
  ledger.unstick(stuck!);
  const report = await shutdown;
  expect(report.clean).toBe(true);
  await waitFor("6|0", () => ledger.runningOn("node1").length === 6, { timeout: 8000 });
  // node2 deregistered (its lease was revoked); balancing before node1's watch has seen that
  // would still average over two nodes, so wait until its cluster view has only itself.
  await waitFor("node1 to see node2 gone", () => !n1.coordinator.cluster.nodeTaskCounts().has("node2"));
  await n1.consumer.balanceNow();
  await staysFalse(
    "node1 to give up tasks with no one to take them",
    () => ledger.runningOn("node1").length !== 6,
    500,
  );
  expect(ledger.overlaps).toEqual([]);
});

test("an owner key deleted from outside stops the task on its node; it then runs exactly once", async () => {
  const ns = uniqueNamespace("owner-deleted");
  const ledger = new RunLedger();
  const client = makeClient(etcd, ns, cleanup);
  await startNode(etcd, ns, "node1", ledger, cleanup);
  await startNode(etcd, ns, "node2", ledger, cleanup);
  await client.submitTask("x");
  await waitFor("x to run", () => ledger.runningCount() === 1);
  const first = ledger.runs[0]!;
  await rawClient(etcd, cleanup).delete().key(new Keys(ns).owner("x")).exec();
  await waitFor("the first run to stop as lost", () => first.reason === "lost");
  await waitFor("x to run again, once", () => ledger.runs.length === 2 && ledger.eachRunningOnce(["x"]));
  expect(ledger.runs[1]!.token).toBeGreaterThan(first.token);
  await staysFalse("another restart", () => ledger.runs.length !== 2 || !ledger.eachRunningOnce(["x"]), 500);
  const infos = await client.tasks();
  expect(infos[0]?.owner).toBe(ledger.runs[1]!.node);
  expect(infos[0]?.token).toBe(ledger.runs[1]!.token);
});

test("a lease revoked from outside: handlers aborted within 1 s, the other node takes over, the node rejoins and gets work after a balance", async () => {
  const ns = uniqueNamespace("revoked");
  const ledger = new RunLedger();
  const client = makeClient(etcd, ns, cleanup);
  const all = ids(10);
  const n1 = await startNode(etcd, ns, "node1", ledger, cleanup);
  const n2 = await startNode(etcd, ns, "node2", ledger, cleanup);
  for (const id of all) await client.submitTask(id);
  await waitFor(
    "10 tasks running, both nodes busy",
    () => ledger.eachRunningOnce(all) && ledger.runningOn("node1").length > 0 && ledger.runningOn("node2").length > 0,
    {
      timeout: 8000,
    },
  );
  const victims = ledger.runningOn("node1");
  const oldLease = n1.coordinator.stats().leaseId!;
  const revokedAt = Date.now();
  await rawClient(etcd, cleanup).leaseClient.leaseRevoke({ ID: oldLease });
  await waitFor("node1's handlers to stop", () => ledger.runningOn("node1").length === 0);
  const stops = ledger.runs
    .filter((r) => r.node === "node1" && victims.includes(r.task))
    .map((r) => r.stopped! - revokedAt);
  expect(stops.length).toBe(victims.length);
  expect(Math.max(...stops)).toBeLessThanOrEqual(1000);
  await waitFor("node2 to run all 10", () => ledger.runningOn("node2").length === 10 && ledger.eachRunningOnce(all), {
    timeout: 8000,
  });
  await waitFor(
    "node1 to rejoin with a new lease",
    () => n1.coordinator.stats().state === "active" && n1.coordinator.stats().leaseId !== oldLease,
    {
      timeout: 8000,
    },
  );
  expect(n1.consumer.state).toBe("running");
  expect(await client.nodes()).toEqual(["node1", "node2"]);
  await counts(n2, "node1");
  await n2.consumer.balanceNow();
  await waitFor(
    "node1 to get tasks again",
    () => ledger.runningOn("node1").length >= 3 && ledger.eachRunningOnce(all),
    { timeout: 8000 },
  );
});
