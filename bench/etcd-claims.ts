/**
 * Claim throughput on etcd: 10,000 tasks claimed by 3 consumers (each starts with the whole
 * backlog announced by its first listing), against the raw rate of the same create-if-absent
 * transaction issued one at a time by one client, in the same run on the same etcd.
 * Also reports how evenly the tasks spread (no rebalance), against the fair share.
 *
 *   bun bench/etcd-claims.ts [tasks=10000] [consumers=3] [claimConcurrency=1]
 */
import { Buffer } from "node:buffer";
import { Keys, encodeOwner } from "../src/coordinators/etcd/keys.ts";
import {
  client,
  fmt,
  RunningCounts,
  startEtcd,
  startNode,
  submitAll,
  taskIds,
  until,
  type BenchNode,
} from "./etcd-support.ts";

const TASKS = Number(process.argv[2] ?? 10_000);
const CONSUMERS = Number(process.argv[3] ?? 3);
/** Consumer claimConcurrency (claims in flight per node); default 1, the consumer's default. */
const CONCURRENCY = Number(process.argv[4] ?? 1);

const etcd = await startEtcd();
try {
  // Baseline: the claim transaction alone, sequential, one client.
  const raw = etcd.client();
  const rawNs = new Keys("/bench-raw");
  const lease = await raw.leaseClient.leaseGrant({ TTL: 60 });
  const rawIds = taskIds(TASKS);
  const rc = client(etcd, rawNs.ns);
  await submitAll(rc, rawIds);
  const owner = Buffer.from(encodeOwner("raw"));
  const r0 = performance.now();
  for (const id of rawIds) {
    const ownerKey = Buffer.from(rawNs.owner(id));
    const res = await raw.kv.txn({
      compare: [
        { key: ownerKey, target: "Version", result: "Equal", version: 0 },
        { key: Buffer.from(rawNs.task(id)), target: "Version", result: "Greater", version: 0 },
      ],
      success: [{ request_put: { key: ownerKey, value: owner, lease: lease.ID } }],
    });
    if (!res.succeeded) throw new Error(`raw claim of ${id} failed`);
  }
  const rawMs = performance.now() - r0;
  const rawRate = (TASKS / rawMs) * 1000;
  await raw.leaseClient.leaseRevoke({ ID: lease.ID });

  // The product: N consumers, FairBalancer, claim-time fairness.
  const ns = "/bench-claims";
  const c = client(etcd, ns);
  const ids = taskIds(TASKS);
  const s0 = performance.now();
  await submitAll(c, ids);
  const submitMs = performance.now() - s0;
  const counts = new RunningCounts();
  const names = Array.from({ length: CONSUMERS }, (_, i) => `node-${i + 1}`);
  const t0 = performance.now();
  const nodes: BenchNode[] = await Promise.all(
    names.map((n) => startNode(etcd, ns, n, counts, 10, { claimConcurrency: CONCURRENCY })),
  );
  const claimMs = await until("every task running", () => counts.total() === TASKS, 300_000).then(
    () => performance.now() - t0,
  );
  const rate = (TASKS / claimMs) * 1000;
  const fair = TASKS / CONSUMERS;
  const spread = names.map((n) => counts.on(n));
  const worst = Math.max(...spread.map((x) => Math.abs(x - fair) / fair));

  console.log(
    `etcd claim throughput (${TASKS} tasks, ${CONSUMERS} consumers, claimConcurrency ${CONCURRENCY}, etcd ${etcd.endpoint})`,
  );
  console.log(`  submit:   ${fmt(submitMs)} (${Math.round((TASKS / submitMs) * 1000)} submits/s, 64 in flight)`);
  console.log(`  raw txn:  ${fmt(rawMs)} = ${Math.round(rawRate)} claims/s (one client, sequential)`);
  console.log(
    `  cluster:  ${fmt(claimMs)} from start to all running = ${Math.round(rate)} claims/s = ${(rate / rawRate).toFixed(2)} x raw (goal >= 0.5)`,
  );
  console.log(
    `  spread:   ${spread.join(" / ")} (fair ${Math.round(fair)}; worst ${(worst * 100).toFixed(1)}% off, goal <= 20%)`,
  );
  console.log(`  doubles:  ${counts.doubles}`);
  await Promise.all(nodes.map((n) => n.consumer.shutdown({ timeout: 30_000 })));
  c.close();
  rc.close();
} finally {
  await etcd.stop();
}
