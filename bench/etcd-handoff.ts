/**
 * Graceful handoff: a node (its own process) holding 1,000 tasks gets SIGTERM; time until all
 * of them run on the two other nodes. Goal: under 1 s (Go Metafora: 37 s for 333 tasks).
 *
 *   bun bench/etcd-handoff.ts [tasks=1000] [runs=3]
 */
import { ChildNode, client, fmt, median, ownerCounts, RunningCounts, startEtcd, startNode, submitAll, taskIds, until } from "./etcd-support.ts";

const TASKS = Number(process.argv[2] ?? 1000);
const RUNS = Number(process.argv[3] ?? 3);

const etcd = await startEtcd();
const results: { handoff: number; exited: number }[] = [];
try {
  for (let run = 1; run <= RUNS; run++) {
    const ns = `/bench-handoff-${run}`;
    const c = client(etcd, ns);
    const leaver = new ChildNode(etcd, ns, "leaver", 10);
    await leaver.ready();
    await submitAll(c, taskIds(TASKS));
    await until("the leaver to hold every task", async () => (await ownerCounts(c)).get("leaver") === TASKS, 120_000, 200);
    const counts = new RunningCounts();
    const stayers = [await startNode(etcd, ns, "stayer-1", counts), await startNode(etcd, ns, "stayer-2", counts)];
    const t0 = performance.now();
    const exited = leaver.signal("SIGTERM").then(() => performance.now() - t0);
    const handoff = await until("the stayers to run every task", () => counts.total() === TASKS, 60_000, 2);
    results.push({ handoff, exited: await exited });
    console.log(`run ${run}: all ${TASKS} running elsewhere ${fmt(handoff)} after SIGTERM (leaver exited after ${fmt(results.at(-1)!.exited)}); split ${stayers.map((s) => counts.on(s.name)).join("/")}; doubles ${counts.doubles}`);
    await Promise.all(stayers.map((s) => s.consumer.shutdown({ timeout: 30_000 })));
    c.close();
  }
  const h = results.map((r) => r.handoff);
  console.log(`graceful handoff of ${TASKS} tasks: median ${fmt(median(h))}, worst ${fmt(Math.max(...h))} over ${RUNS} runs (goal < 1000 ms)`);
} finally {
  await etcd.stop();
}
