/**
 * Failover after SIGKILL: a node holding 1,000 tasks is killed; time until all of them run on
 * the two other nodes. Every node is its own process. Median and worst of several runs.
 * Goal: TTL + 1 s at worst.
 *
 *   bun bench/etcd-failover.ts [tasks=1000] [runs=5] [leaseTtl=10] [claimConcurrency=1]
 */
import { ChildNode, client, fmt, median, ownerCounts, startEtcd, submitAll, taskIds, until } from "./etcd-support.ts";

const TASKS = Number(process.argv[2] ?? 1000);
const RUNS = Number(process.argv[3] ?? 5);
const TTL = Number(process.argv[4] ?? 10);
const CONCURRENCY = Number(process.argv[5] ?? 1);

const etcd = await startEtcd();
const times: number[] = [];
try {
  for (let run = 1; run <= RUNS; run++) {
    const ns = `/bench-failover-${run}`;
    const c = client(etcd, ns);
    const victim = new ChildNode(etcd, ns, "victim", TTL, CONCURRENCY);
    await victim.ready();
    await submitAll(c, taskIds(TASKS));
    await until(
      "the victim to hold every task",
      async () => (await ownerCounts(c)).get("victim") === TASKS,
      120_000,
      200,
    );
    const survivors = [
      new ChildNode(etcd, ns, "survivor-1", TTL, CONCURRENCY),
      new ChildNode(etcd, ns, "survivor-2", TTL, CONCURRENCY),
    ];
    await Promise.all(survivors.map((s) => s.ready()));
    // Kill at a random point of the keepalive cycle, as a crash would.
    await new Promise((r) => setTimeout(r, Math.random() * 2000));
    const _t0 = performance.now();
    await victim.signal("SIGKILL");
    const ms = await until(
      "the survivors to run every task",
      () => survivors[0]!.claimed + survivors[1]!.claimed >= TASKS,
      (TTL + 60) * 1000,
      5,
    );
    times.push(ms);
    const owners = await ownerCounts(c);
    console.log(
      `run ${run}: all ${TASKS} running elsewhere ${fmt(ms)} after SIGKILL (split ${survivors.map((s) => s.claimed).join("/")}; owners in etcd ${JSON.stringify(Object.fromEntries(owners))})`,
    );
    await Promise.all(survivors.map((s) => s.signal("SIGTERM")));
    c.close();
  }
  console.log(
    `failover of ${TASKS} tasks after SIGKILL, lease TTL ${TTL} s, claimConcurrency ${CONCURRENCY}: ` +
      `median ${fmt(median(times))}, worst ${fmt(Math.max(...times))} over ${RUNS} runs (goal <= ${TTL * 1000 + 1000} ms)`,
  );
} finally {
  await etcd.stop();
}
