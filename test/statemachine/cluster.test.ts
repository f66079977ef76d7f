/**
 * Stateful tasks on real clusters: Consumers on etcd coordinators running statefulHandler with
 * the etcd state store and task commands (Go T43 TestSleepTest and T44 TestAll equivalents).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Etcd3 } from "etcd3";
import { balance } from "../../src/command.ts";
import { EtcdCoordinator } from "../../src/coordinators/etcd/coordinator.ts";
import { EtcdStateStore } from "../../src/coordinators/etcd/state-store.ts";
import { EtcdTaskCommands } from "../../src/coordinators/etcd/task-commands.ts";
import { Consumer } from "../../src/consumer/consumer.ts";
import { silentLogger } from "../../src/log.ts";
import { errorMessage, sleepMessage } from "../../src/statemachine/messages.ts";
import { statefulHandler } from "../../src/statemachine/stateful.ts";
import type { Message } from "../../src/statemachine/types.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { waitFor } from "../support/wait.ts";
import { CapturingLogger, Cleanup, makeClient, uniqueNamespace } from "../etcd/helpers.ts";

let etcd: EtcdServer;
let raw: Etcd3;
const cleanup = new Cleanup();
beforeAll(async () => {
  etcd = await startEtcd();
  raw = etcd.client();
});
afterEach(() => cleanup.run());
afterAll(async () => {
  await etcd?.stop();
});

/** Handler calls per task and node, across a namespace's nodes. */
class Calls {
  readonly byTask = new Map<string, string[]>();
  add(task: string, node: string): void {
    this.byTask.set(task, [...(this.byTask.get(task) ?? []), node]);
  }
  count(task: string): number {
    return this.byTask.get(task)?.length ?? 0;
  }
}

interface StatefulNode {
  readonly name: string;
  readonly consumer: Consumer;
  resident(): string[];
}

/**
 * A node running the test's stateful handler: "sleeper" tasks sleep 3 s on their first run,
 * "error-test" turns every `run` command into an error, all others return the command they get.
 */
async function startStatefulNode(ns: string, name: string, calls: Calls): Promise<StatefulNode> {
  const log = new CapturingLogger();
  const coordinator = new EtcdCoordinator(
    { endpoints: [etcd.endpoint], namespace: ns, node: name, leaseTtl: 3 },
    { log },
  );
  const handler = statefulHandler({
    name: "sm",
    store: new EtcdStateStore(raw, ns),
    commands: new EtcdTaskCommands(raw, ns, name, silentLogger),
    run: async (task, ctx): Promise<Message | "release"> => {
      calls.add(task.id, name);
      if (task.id.startsWith("sleeper") && calls.count(task.id) === 1) return sleepMessage(new Date(Date.now() + 3000));
      for await (const m of ctx.commands) {
        if (task.id === "error-test" && m.code === "run") return errorMessage("error-test always fails");
        return m;
      }
      return "release";
    },
  });
  const consumer = new Consumer({ coordinator, node: name, handler, balanceEvery: Infinity, log });
  cleanup.add(coordinator, (c) => c.close());
  cleanup.add(consumer, (c) => c.shutdown({ timeout: 5000 }));
  await consumer.start();
  return {
    name,
    consumer,
    resident: () =>
      consumer
        .tasks()
        .map((t) => t.task.id)
        .sort(),
  };
}

/** Cluster-level waits: generous, for a loaded 2-core machine. */
const SLOW = { timeout: 20_000 };

const residentOn = (nodes: StatefulNode[], id: string): string[] =>
  nodes.filter((n) => n.resident().includes(id)).map((n) => n.name);

describe("stateful tasks on etcd clusters", () => {
  test("T43: a sleeping task stays resident on exactly one of two nodes; both shut down promptly and leave nothing running", async () => {
    const ns = uniqueNamespace("t43");
    const calls = new Calls();
    const client = makeClient(etcd, ns, cleanup);
    const nodes = [await startStatefulNode(ns, "node1", calls), await startStatefulNode(ns, "node2", calls)];
    await client.submitTask("sleeper");
    await waitFor("the task to run once", () => calls.count("sleeper") === 1, SLOW);
    await waitFor(
      "the sleep to be stored",
      async () => (await new EtcdStateStore(raw, ns).get("sleeper"))?.code === "sleeping",
      SLOW,
    );
    expect(residentOn(nodes, "sleeper").length).toBe(1);
    const started = Date.now();
    const reports = await Promise.all(nodes.map((n) => n.consumer.shutdown({ timeout: 5000 })));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(reports.every((r) => r.clean)).toBe(true);
    expect(nodes.map((n) => n.resident())).toEqual([[], []]);
    // Released while asleep: the state still holds the original deadline for the next owner.
    const state = await new EtcdStateStore(raw, ns).get("sleeper");
    expect(state?.code).toBe("sleeping");
  }, 30_000);

  test("T44: two namespaces × two nodes: kill, spread, failover, error rate → failed, resubmitted failed task never runs", async () => {
    const nsA = uniqueNamespace("t44a");
    const nsB = uniqueNamespace("t44b");
    const callsA = new Calls();
    const callsB = new Calls();
    const clientA = makeClient(etcd, nsA, cleanup);
    const clientB = makeClient(etcd, nsB, cleanup);
    const a = [await startStatefulNode(nsA, "node1a", callsA), await startStatefulNode(nsA, "node2a", callsA)];
    const b = [await startStatefulNode(nsB, "node1b", callsB), await startStatefulNode(nsB, "node2b", callsB)];

    // task1 runs on exactly one node in each namespace.
    await clientA.submitTask("task1");
    await clientB.submitTask("task1");
    await waitFor("task1 resident once in A", () => residentOn(a, "task1").length === 1, SLOW);
    await waitFor("task1 resident once in B", () => residentOn(b, "task1").length === 1, SLOW);

    // A kill through the commander finishes it: nothing runs in A.
    await new EtcdTaskCommands(raw, nsA, "operator").send("task1", { code: "kill" });
    await waitFor("A to run nothing", () => a.every((n) => n.resident().length === 0), SLOW);
    expect((await new EtcdStateStore(raw, nsA).get("task1"))?.code).toBe("killed");
    expect(residentOn(b, "task1").length).toBe(1); // B is untouched

    // Six more tasks and balance commands spread them 2..4 per node.
    const six = ["t-1", "t-2", "t-3", "t-4", "t-5", "t-6"];
    for (const id of six) await clientA.submitTask(id);
    await waitFor("all six to run in A", () => six.every((id) => residentOn(a, id).length === 1), SLOW);
    await waitFor(
      "each node in A to hold 2 to 4",
      async () => {
        const counts = a.map((n) => n.resident().length);
        if (counts.every((c) => c >= 2 && c <= 4)) return true;
        for (const n of a) await clientA.submitCommand(n.name, balance());
        return false;
      },
      { timeout: 20_000, interval: 1000 },
    );

    // Shutting node1a down moves all six to node2a.
    await a[0]!.consumer.shutdown({ timeout: 5000 });
    await waitFor("node2a to hold all six", () => six.every((id) => a[1]!.resident().includes(id)), SLOW);

    // Namespace B: every other `run` command makes the handler fail; 8 errors within 4 h → failed.
    await clientB.submitTask("error-test");
    await waitFor("error-test to run", () => callsB.count("error-test") === 1, SLOW);
    const residentBefore = b.reduce((sum, n) => sum + n.resident().length, 0);
    expect(residentBefore).toBe(2);
    const commander = new EtcdTaskCommands(raw, nsB, "operator");
    const storeB = new EtcdStateStore(raw, nsB);
    let sent = 0;
    while (sent < 16) {
      await commander.send("error-test", { code: "run" });
      sent++;
      // Wait for the machine to settle before the next command (the slot holds only one):
      // odd commands reach the handler, which fails (→ fault → sleeping, or failed at last);
      // even ones wake the sleeping task, which runs the handler again.
      if (sent % 2 === 1) {
        const errors = (sent + 1) / 2;
        const settled = await waitFor(
          `run #${sent} to fault the task (error ${errors})`,
          async () => {
            const s = await storeB.get("error-test");
            return s && ((s.code === "sleeping" && s.errors?.length === errors) || s.code === "failed") ? s : undefined;
          },
          SLOW,
        );
        if (settled.code === "failed") break;
      } else {
        await waitFor(`run #${sent} to wake the task`, () => callsB.count("error-test") === sent / 2 + 1, SLOW);
      }
    }
    const failed = (await storeB.get("error-test"))!;
    expect(failed.code).toBe("failed");
    expect(sent).toBe(15); // 8 errors, with a wake-up `run` between each two
    expect(failed.errors!.filter((e) => e.error === "error-test always fails").length).toBe(8);
    expect(failed.errors!.at(-1)!.error).toBe("exceeded error rate: 8 errors within 4h");
    await waitFor(
      "B's running count to drop from 2 to 1",
      () => b.reduce((sum, n) => sum + n.resident().length, 0) === 1,
      SLOW,
    );
    const runs = callsB.count("error-test");

    // Resubmitting the failed task succeeds, but it never runs again: it is done at once.
    await clientB.submitTask("error-test");
    await waitFor(
      "the resubmitted task to be finished and deleted",
      async () => !(await clientB.tasks()).some((t) => t.id === "error-test"),
      SLOW,
    );
    expect(callsB.count("error-test")).toBe(runs);
    expect((await storeB.get("error-test"))?.code).toBe("failed");
  }, 90_000);
});
