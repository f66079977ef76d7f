/**
 * Claim throughput and spread on the memory coordinator.
 *
 *   bun bench/memory-claims.ts [tasks=10000]
 *
 * Baseline: one node calling broker claim() in a loop, no consumer (the cost floor).
 * Then 3 consumers (default FairBalancer, no periodic rebalance) with idle handlers: time
 * from the first submit until every task runs, and the spread right after: min and max tasks
 * per consumer as a ratio of the fair share. Also shown: the DumbBalancer (no claim-time
 * fairness) and claimConcurrency 4, for comparison. Goal: < 1 s, spread within ±10%.
 */
import { DumbBalancer } from "../src/balancers/dumb.ts";
import { Consumer } from "../src/consumer/consumer.ts";
import { MemoryBroker } from "../src/coordinators/memory/broker.ts";
import { silentLogger } from "../src/log.ts";
import type { Balancer, CoordinatorContext, Handler } from "../src/types.ts";

const TASKS = Number(process.argv[2] ?? 10_000);
const NODES = 3;

const idle: Handler = {
  run: (_task, ctx) =>
    new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve("release"), { once: true })),
};

async function baseline(): Promise<number> {
  const broker = new MemoryBroker();
  const coord = broker.coordinator("raw");
  const noop = () => {};
  const ctx: CoordinatorContext = {
    node: "raw",
    log: silentLogger,
    announce: noop,
    withdraw: noop,
    command: noop,
    lost: noop,
    suspend: async () => {},
    resume: noop,
  };
  await coord.init(ctx);
  const client = broker.client();
  const t0 = performance.now();
  for (let i = 0; i < TASKS; i++) await client.submitTask(`t${i}`);
  for (let i = 0; i < TASKS; i++) if (!(await coord.claim({ id: `t${i}`, props: {} }))) throw new Error("claim failed");
  const ms = performance.now() - t0;
  await coord.close();
  return ms;
}

interface Result {
  label: string;
  submitMs: number;
  allRunningMs: number;
  counts: number[];
  shutdownMs: number;
  missed: number;
}

async function cluster(label: string, balancer: () => Balancer | undefined, claimConcurrency = 1): Promise<Result> {
  const broker = new MemoryBroker();
  const consumers = Array.from({ length: NODES }, (_, i) => {
    const b = balancer();
    return new Consumer({
      coordinator: broker.coordinator(`n${i}`),
      node: `n${i}`,
      handler: idle,
      ...(b ? { balancer: b } : {}),
      balanceEvery: Infinity,
      claimConcurrency,
      log: silentLogger,
    });
  });
  await Promise.all(consumers.map((c) => c.start()));
  let claimed = 0;
  let allRunning!: () => void;
  const done = new Promise<void>((resolve) => (allRunning = resolve));
  let missed = 0;
  for (const c of consumers) c.on("claimed", () => ++claimed === TASKS && allRunning());
  for (const c of consumers) c.on("claimMissed", () => missed++);
  const client = broker.client();
  const t0 = performance.now();
  for (let i = 0; i < TASKS; i++) await client.submitTask(`t${i}`);
  const submitMs = performance.now() - t0;
  const timeout = setTimeout(() => {
    console.error(`${label}: only ${claimed}/${TASKS} running after 60 s`);
    process.exit(1);
  }, 60_000);
  await done;
  clearTimeout(timeout);
  const allRunningMs = performance.now() - t0;
  const counts = consumers.map((c) => c.tasks().length);
  const s0 = performance.now();
  await Promise.all(consumers.map((c) => c.shutdown({ timeout: 30_000 })));
  return { label, submitMs, allRunningMs, counts, shutdownMs: performance.now() - s0, missed };
}

function report(r: Result): void {
  const share = TASKS / NODES;
  const min = Math.min(...r.counts);
  const max = Math.max(...r.counts);
  const pct = (n: number) =>
    `${(n / share - 1) * 100 >= 0 ? "+" : ""}${((n / share - 1) * 100).toFixed(1)}%`.replace("-0.0", "+0.0");
  console.log(
    `${r.label.padEnd(34)} all running ${r.allRunningMs.toFixed(0).padStart(5)} ms (submit ${r.submitMs.toFixed(0)} ms)` +
      `  per node ${JSON.stringify(r.counts)}  min ${pct(min)} max ${pct(max)} of fair share  lost races ${r.missed}  shutdown ${r.shutdownMs.toFixed(0)} ms`,
  );
}

console.log(
  `memory coordinator, ${TASKS} tasks, ${NODES} consumers, ${process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.version}`}`,
);
const warm = await baseline(); // JIT warm-up
const base = await baseline();
console.log(
  `${"baseline: raw submit+claim loop".padEnd(34)} ${base.toFixed(0).padStart(5)} ms (warm-up run ${warm.toFixed(0)} ms)`,
);
await cluster("warm-up", () => undefined);
for (let run = 1; run <= 3; run++) report(await cluster(`FairBalancer (default), run ${run}`, () => undefined));
report(await cluster("FairBalancer, claimConcurrency 4", () => undefined, 4));
report(await cluster("DumbBalancer (no fairness)", () => new DumbBalancer()));
process.exit(0);
