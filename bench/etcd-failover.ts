/**
 * Failover after SIGKILL: a node (its own process) holding 1,000 tasks is killed; time until
 * all of them run on the two other nodes. Median and worst of several runs. Goal: TTL + 1 s.
 *
 *   bun bench/etcd-failover.ts [tasks=1000] [runs=5] [leaseTtl=10] [claimConcurrency=1]
 */
import { ChildNode, client, fmt, median, ownerCounts, RunningCounts, startEtcd, startNode, submitAll, taskIds, until } from "./etcd-support.ts";

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
    const victim = new ChildNode(etcd, ns, "victim", TTL);
    await victim.ready();
    await submitAll(c, taskIds(TASKS));
    await until("the victim to hold every task", async () => (await ownerCounts(c)).get("victim") === TASKS, 120_000, 200);
    const counts = new RunningCounts();
    const survivors = [
      await startNode(etcd, ns, "survivor-1", counts, TTL, { claimConcurrency: CONCURRENCY }),
      await startNode(etcd, ns, "survivor-2", counts, TTL, { claimConcurrency: CONCURRENCY }),
    ];
    // Kill at a random point of the keepalive cycle, as a crash would.
    await new Promise((r) => setTimeout(r, Math.random() * 2000));
    const t0 = performance.now();
    await victim.signal("SIGKILL");
    const ms = await until("the survivors to run every task", () => counts.total() === TASKS, (TTL + 60) * 1000, 5);
    times.push(ms);
    console.log(`run ${run}: all ${TASKS} running elsewhere ${fmt(ms)} after SIGKILL (split ${survivors.map((s) => counts.on(s.name)).join("/")}, doubles ${counts.doubles})`);
    await Promise.all(survivors.map((s) => s.consumer.shutdown({ timeout: 30_000 })));
    c.close();
  }
  console.log(`failover of ${TASKS} tasks after SIGKILL, lease TTL ${TTL} s, claimConcurrency ${CONCURRENCY}: median ${fmt(median(times))}, worst ${fmt(Math.max(...times))} over ${RUNS} runs (goal <= ${TTL * 1000 + 1000} ms)`);
} finally {
  await etcd.stop();
}
