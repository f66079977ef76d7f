/**
 * What the console's task list costs at scale: GET /api/tasks on the node's real HTTP server
 * (memory broker, in process) with N tasks.
 *
 *   bun bench/console-tasks.ts [tasks=100000]
 *
 * Baseline: the unfiltered list every task (what a page without server-side paging would have
 * to download). Then what the console asks for: one page of 50 rows (first page, a page deep
 * in the list, an id search, a handler filter). Each figure is the median of 9 requests, with
 * the response size.
 */
import { Consumer } from "../src/consumer/consumer.ts";
import { MemoryBroker } from "../src/coordinators/memory/broker.ts";
import { MemoryStateStore } from "../src/coordinators/memory/state-store.ts";
import { silentLogger } from "../src/log.ts";
import { startHttpServer } from "../src/runtime/http/server.ts";
import { createMetrics } from "../src/runtime/metrics/metrics.ts";

const TASKS = Number(process.argv[2] ?? 100_000);
const RUNS = 9;

const broker = new MemoryBroker();
const consumer = new Consumer({
  coordinator: broker.coordinator("n1"),
  node: "n1",
  handler: { run: async () => "release" },
  balanceEvery: Infinity,
  log: silentLogger,
});
const client = broker.client();
for (let i = 0; i < TASKS; i++) await client.submitTask(`${i % 3 === 0 ? "crawl" : "report"}:t${i}`, { i });
const metrics = createMetrics({ defaultMetrics: false, loopLagSampleEvery: false });
const server = await startHttpServer(
  {
    config: { http: { listen: "127.0.0.1:0" } },
    node: "n1",
    started: new Date(),
    consumer,
    client,
    stateStore: new MemoryStateStore(),
    isReady: () => true,
    log: silentLogger,
    metrics,
  },
  { listen: "127.0.0.1:0" },
);

async function measure(path: string): Promise<{ ms: number; bytes: number; total: unknown }> {
  const times: number[] = [];
  let bytes = 0;
  let total: unknown;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const res = await fetch(server.url + path);
    const text = await res.text();
    times.push(performance.now() - t0);
    bytes = text.length;
    if (i === 0) total = (JSON.parse(text) as { total?: unknown }).total;
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(RUNS / 2)]!, bytes, total };
}

console.log(
  `GET /api/tasks with ${TASKS} tasks (median of ${RUNS}, ${process.versions.bun ? `Bun ${process.versions.bun}` : "Node"})`,
);
const rows: Array<[string, string]> = [
  ["baseline: every task", "/api/tasks"],
  ["first page (50)", "/api/tasks?offset=0&limit=50"],
  ["page deep in the list", `/api/tasks?offset=${Math.floor(TASKS / 2)}&limit=50`],
  ["id search q=t4242", "/api/tasks?q=t4242&offset=0&limit=50"],
  ["handler=crawl, page", "/api/tasks?handler=crawl&offset=0&limit=50"],
];
for (const [label, path] of rows) {
  const r = await measure(path);
  console.log(
    `${label.padEnd(26)} ${r.ms.toFixed(1).padStart(8)} ms  ${(r.bytes / 1024).toFixed(1).padStart(9)} KiB  total=${String(r.total)}`,
  );
}
await server.close();
metrics.close();
