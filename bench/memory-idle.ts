/**
 * Memory cost of running idle tasks on the memory coordinator.
 *
 *   bun bench/memory-idle.ts [tasks=10000]
 *
 * Baseline: this process after start-up, a broker and one started consumer, after GC.
 * Then: tasks submitted (broker only, consumer frozen), then all of them running in idle
 * handlers (each waits on its AbortSignal). Figures are RSS and JS heap growth after GC,
 * per task. Run twice in one process; the second pass shows the steady state.
 */
import { Consumer } from "../src/consumer/consumer.ts";
import { MemoryBroker } from "../src/coordinators/memory/broker.ts";
import { silentLogger } from "../src/log.ts";
import type { Handler } from "../src/types.ts";

const TASKS = Number(process.argv[2] ?? 10_000);

const bunGc = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
async function settle(): Promise<{ rss: number; heap: number }> {
  for (let i = 0; i < 3; i++) {
    bunGc?.gc(true);
    await new Promise((r) => setTimeout(r, 20));
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

const idle: Handler = {
  run: (_task, ctx) =>
    new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve("release"), { once: true })),
};

async function pass(n: number): Promise<void> {
  const broker = new MemoryBroker();
  const consumer = new Consumer({
    coordinator: broker.coordinator("n"),
    node: "n",
    handler: idle,
    balanceEvery: Infinity,
    log: silentLogger,
  });
  await consumer.start();
  consumer.freeze();
  const base = await settle();

  const client = broker.client();
  for (let i = 0; i < TASKS; i++) await client.submitTask(`task-${i}`, { i });
  const submitted = await settle();

  let running = 0;
  const all = new Promise<void>((resolve) => consumer.on("claimed", () => ++running === TASKS && resolve()));
  consumer.unfreeze();
  await all;
  const ran = await settle();

  const kb = (bytes: number) => (bytes / 1024).toFixed(2);
  const per = (a: number, b: number) => `${((a - b) / TASKS).toFixed(0)} B/task`;
  console.log(`pass ${n}: baseline rss ${kb(base.rss)} KiB heap ${kb(base.heap)} KiB`);
  console.log(
    `  ${TASKS} tasks submitted, not running: rss +${kb(submitted.rss - base.rss)} KiB (${per(submitted.rss, base.rss)}), heap +${kb(submitted.heap - base.heap)} KiB (${per(submitted.heap, base.heap)})`,
  );
  console.log(
    `  ${TASKS} tasks running idle (over submitted): rss +${kb(ran.rss - submitted.rss)} KiB (${per(ran.rss, submitted.rss)}), heap +${kb(ran.heap - submitted.heap)} KiB (${per(ran.heap, submitted.heap)})`,
  );
  console.log(`  total per running task: rss ${per(ran.rss, base.rss)}, heap ${per(ran.heap, base.heap)}`);
  await consumer.shutdown({ timeout: 30_000 });
}

console.log(
  `memory coordinator, ${TASKS} idle tasks, ${process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.version}`}${bunGc ? "" : " (no forced GC available: figures are noisier)"}`,
);
await pass(1);
await pass(2);
process.exit(0);
