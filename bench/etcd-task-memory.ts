/**
 * Library memory per running task on the etcd coordinator, in one process: a node that already
 * knows N unclaimed tasks (frozen, so its task table holds them all), then all N running in
 * idle handlers. The JS heap after GC, before and after, divided by N, is what the library
 * keeps per running task (claim, TaskRun, AbortController and context, maps of consumer and
 * coordinator); the handler's own state here is one pending promise and one abort listener,
 * measured alone in the same run and subtracted. Goal: ≤ 4 KiB.
 *
 *   bun bench/etcd-task-memory.ts [tasks=10000]
 */
import { EtcdCoordinator } from "../src/coordinators/etcd/coordinator.ts";
import { Consumer } from "../src/consumer/consumer.ts";
import { silentLogger } from "../src/log.ts";
import type { HandlerResult } from "../src/types.ts";
import { client, startEtcd, taskIds, until } from "./etcd-support.ts";

const TASKS = Number(process.argv[2] ?? 10_000);
const KiB = 1024;

function heap(): number {
  Bun.gc(true);
  Bun.gc(true);
  return process.memoryUsage().heapUsed;
}

/** What the bench handler itself keeps per task: a pending promise and an abort listener. */
function handlerBaseline(n: number): number {
  const controllers = Array.from({ length: n }, () => new AbortController());
  const before = heap();
  const keep = controllers.map(
    (c) =>
      new Promise<HandlerResult>((resolve) =>
        c.signal.addEventListener("abort", () => resolve("release"), { once: true }),
      ),
  );
  const after = heap();
  void keep.length;
  return (after - before) / n;
}

const etcd = await startEtcd();
try {
  const ns = "/task-memory";
  const c = client(etcd, ns);
  await c.submitTasks(taskIds(TASKS).map((id) => ({ id })));
  let running = 0;
  const coordinator = new EtcdCoordinator(
    { endpoints: [etcd.endpoint], namespace: ns, node: "mem" },
    { log: silentLogger },
  );
  const consumer = new Consumer({
    coordinator,
    node: "mem",
    balanceEvery: Infinity,
    claimConcurrency: 256,
    log: silentLogger,
    handler: {
      run: (_task, ctx) =>
        new Promise<HandlerResult>((resolve) => {
          running++;
          ctx.signal.addEventListener("abort", () => resolve("release"), { once: true });
        }),
    },
  });
  consumer.freeze();
  await consumer.start();
  await until("the node to know every task", () => coordinator.stats().knownTasks >= TASKS, 60_000, 20);
  const known = heap();
  const knownRss = process.memoryUsage().rss;
  consumer.unfreeze();
  await until("every task running", () => running === TASKS, 120_000, 20);
  await new Promise((r) => setTimeout(r, 200)); // let the owner-key events of our own claims arrive
  const loaded = heap();
  const loadedRss = process.memoryUsage().rss;
  const perTask = (loaded - known) / TASKS;
  const handler = handlerBaseline(TASKS);
  console.log(`etcd: library memory per running task (${TASKS} tasks, one node, JS heap after GC)`);
  console.log(`  node knowing ${TASKS} unclaimed tasks: ${(known / 1024 / 1024).toFixed(1)} MiB heap`);
  console.log(
    `  all running:                  ${(loaded / 1024 / 1024).toFixed(1)} MiB heap = +${(perTask / KiB).toFixed(2)} KiB per task`,
  );
  console.log(`  bench handler's own state:    ${(handler / KiB).toFixed(2)} KiB per task (measured alone)`);
  console.log(`  library per running task:     ${((perTask - handler) / KiB).toFixed(2)} KiB (goal <= 4 KiB)`);
  console.log(
    `  RSS: ${(knownRss / 1024 / 1024).toFixed(0)} → ${(loadedRss / 1024 / 1024).toFixed(0)} MiB = +${((loadedRss - knownRss) / TASKS / KiB).toFixed(1)} KiB per task ` +
      `(allocator and gRPC buffers of the claims included; not returned to the OS at once)`,
  );
  await consumer.shutdown({ timeout: 30_000 });
  c.close();
} finally {
  await etcd.stop();
}
