/**
 * Graceful handoff: a node holding 1,000 tasks gets SIGTERM; time until all of them run on the
 * two other nodes. Every node is its own process, as in production. Goal: under 1 s (Go
 * Metafora, same setup: 37 s for 333 tasks).
 *
 *   bun bench/etcd-handoff.ts [tasks=1000] [runs=3] [claimConcurrency=1]
 */
import { ChildNode, client, fmt, median, ownerCounts, startEtcd, submitAll, taskIds, until } from "./etcd-support.ts";

const TASKS = Number(process.argv[2] ?? 1000);
const RUNS = Number(process.argv[3] ?? 3);
const CONCURRENCY = Number(process.argv[4] ?? 1);

const etcd = await startEtcd();
const results: number[] = [];
try {
  for (let run = 1; run <= RUNS; run++) {
    const ns = `/bench-handoff-${run}`;
    const c = client(etcd, ns);
    const leaver = new ChildNode(etcd, ns, "leaver", 10, CONCURRENCY);
    await leaver.ready();
    await submitAll(c, taskIds(TASKS));
    await until(
      "the leaver to hold every task",
      async () => (await ownerCounts(c)).get("leaver") === TASKS,
      120_000,
      200,
    );
    const stayers = [
      new ChildNode(etcd, ns, "stayer-1", 10, CONCURRENCY),
      new ChildNode(etcd, ns, "stayer-2", 10, CONCURRENCY),
    ];
    await Promise.all(stayers.map((s) => s.ready()));
    const t0 = performance.now();
    const exited = leaver.signal("SIGTERM").then(() => performance.now() - t0);
    const handoff = await until(
      "the stayers to run every task",
      () => stayers[0]!.claimed + stayers[1]!.claimed >= TASKS,
      60_000,
      2,
    );
    results.push(handoff);
    const owners = await ownerCounts(c);
    console.log(
      `run ${run}: all ${TASKS} running elsewhere ${fmt(handoff)} after SIGTERM (leaver exited after ${fmt(await exited)}); ` +
        `split ${stayers.map((s) => s.claimed).join("/")}; owners in etcd ${JSON.stringify(Object.fromEntries(owners))}`,
    );
    await Promise.all(stayers.map((s) => s.signal("SIGTERM")));
    c.close();
  }
  console.log(
    `graceful handoff of ${TASKS} tasks (claimConcurrency ${CONCURRENCY}): median ${fmt(median(results))}, worst ${fmt(Math.max(...results))} over ${RUNS} runs (goal < 1000 ms)`,
  );
} finally {
  await etcd.stop();
}
