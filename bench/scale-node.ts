/**
 * One node of bench/scale.ts, in its own process: a Consumer on the etcd coordinator with idle
 * handlers (they run until told to stop). Usage:
 *   bun bench/scale-node.ts <endpoint> <namespace> <node> <leaseTtl> <claimConcurrency> <frozen 0|1>
 * Stdout: "ready <ms from process start to consumer started>", then "count <running>" whenever
 * the number of running handlers changed (at most every 20 ms), and "stats <json>" after each
 * "stats" or "memstats" (the same after a full GC) line on stdin. Stdin "unfreeze" starts claiming. SIGTERM: graceful shutdown.
 */
import { EtcdCoordinator } from "../src/coordinators/etcd/coordinator.ts";
import { Consumer } from "../src/consumer/consumer.ts";
import { DumbBalancer } from "../src/balancers/dumb.ts";
import { silentLogger } from "../src/log.ts";
import type { HandlerResult, Logger } from "../src/types.ts";

const [endpoint, namespace, node, ttl, concurrency, frozen] = process.argv.slice(2);
if (!endpoint || !namespace || !node || !ttl || !concurrency) {
  console.error("usage: scale-node.ts <endpoint> <namespace> <node> <leaseTtl> <claimConcurrency> [frozen 0|1]");
  process.exit(2);
}
const processStart = performance.timeOrigin;
let running = 0;
let reported = -1;
let reportTimer: ReturnType<typeof setTimeout> | undefined;
function report(): void {
  if (reportTimer) return;
  reportTimer = setTimeout(() => {
    reportTimer = undefined;
    if (running !== reported) {
      reported = running;
      process.stdout.write(`count ${running}\n`);
    }
  }, 20);
}

/** SCALE_LOG=debug|info|warn: that level and above to stderr, prefixed with the node name. */
const level = process.env.SCALE_LOG;
const levels = ["debug", "info", "warn", "error"];
const at = (l: string) => (m: string) => {
  if (level && levels.indexOf(l) >= levels.indexOf(level)) process.stderr.write(`${node} ${l} ${m}\n`);
};
const log: Logger = level
  ? { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") }
  : silentLogger;
const coordinator = new EtcdCoordinator({ endpoints: [endpoint], namespace, node, leaseTtl: Number(ttl) }, { log });
const consumer = new Consumer({
  coordinator,
  node,
  balanceEvery: Infinity,
  // SCALE_REBALANCE=0: no membership-driven rebalancing (to tell its cost from the join's).
  ...(process.env.SCALE_REBALANCE === "0" ? { rebalance: { enabled: false } } : {}),
  claimConcurrency: Number(concurrency),
  ...(process.env.SCALE_DUMB ? { balancer: new DumbBalancer() } : {}),
  log,
  handler: {
    run: (_task, ctx) =>
      new Promise<HandlerResult>((resolve) => {
        running++;
        report();
        const stop = (): void => {
          running--;
          report();
          resolve("release");
        };
        if (ctx.signal.aborted) stop();
        else ctx.signal.addEventListener("abort", stop, { once: true });
      }),
  },
});
if (frozen === "1") consumer.freeze();
await consumer.start();
process.stdout.write(`ready ${Math.round(Date.now() - processStart)}\n`);

let input = "";
process.stdin.on("data", (chunk: Buffer) => {
  const lines = (input + chunk.toString()).split("\n");
  input = lines.pop() ?? "";
  for (const line of lines) {
    if (line === "unfreeze") consumer.unfreeze();
    else if (line === "exit") process.exit(0);
    else if (line === "stats" || line === "memstats") {
      // A full GC only when memory is asked for: polled every 200 ms it would load the machine.
      if (line === "memstats") Bun.gc(true);
      const mem = process.memoryUsage();
      const cpu = process.cpuUsage();
      const stats = {
        rss: mem.rss,
        heapUsed: mem.heapUsed,
        running,
        known: coordinator.stats().knownTasks,
        cpuMs: (cpu.user + cpu.system) / 1000,
      };
      process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
    }
  }
});
process.on("SIGTERM", () => {
  const t0 = performance.now();
  // SCALE_TRACE=1: when the handlers had all stopped and when the shutdown (releases, revoke) ended.
  if (process.env.SCALE_TRACE) {
    const held = running;
    let released = 0;
    consumer.on("released", () => {
      if (++released === held)
        process.stderr.write(`${node}: all ${held} released ${Math.round(performance.now() - t0)} ms after SIGTERM\n`);
    });
  }
  void consumer.shutdown({ timeout: 30_000 }).then((report) => {
    if (process.env.SCALE_TRACE)
      process.stderr.write(`${node}: shutdown done ${Math.round(performance.now() - t0)} ms after SIGTERM\n`);
    process.exit(report.clean ? 0 : 1);
  });
});
// SCALE_WATCH_NODE=<name>: that node prints its claim pipeline to stderr every 250 ms (running,
// pending announcements, ignored, attempts and claims in flight, claims waiting on a lease in
// doubt, coordinator state, CPU ms). The consumer's claim loop is private: read for the bench only.
if (process.env.SCALE_WATCH_NODE === node) {
  const t0 = performance.now();
  setInterval(() => {
    const c = consumer as unknown as { claims: { pendingCount: number; attempting: number; claiming: number } };
    const s = coordinator.stats();
    process.stderr.write(
      `${node} +${Math.round(performance.now() - t0)} run ${running} pend ${c.claims.pendingCount} ign ${consumer.ignores().length} att ${c.claims.attempting} clm ${c.claims.claiming} wait ${s.claimsWaiting} state ${s.state} cpu ${Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000)}\n`,
    );
  }, 250).unref();
}
