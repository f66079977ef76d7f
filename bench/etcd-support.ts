/**
 * Shared pieces of the etcd benchmarks: a real etcd (the test harness), in-process consumers
 * with idle handlers and cheap running counts, child-process consumers (to SIGKILL or SIGTERM),
 * and etcd's own request counters from its /metrics endpoint.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { EtcdClient } from "../src/coordinators/etcd/client.ts";
import { EtcdCoordinator } from "../src/coordinators/etcd/coordinator.ts";
import { Consumer, type ConsumerOptions } from "../src/consumer/consumer.ts";
import { silentLogger } from "../src/log.ts";
import type { Handler, HandlerResult } from "../src/types.ts";
export { startEtcd, type EtcdServer } from "../test/support/etcd.ts";
import type { EtcdServer } from "../test/support/etcd.ts";

/** Running handlers per node, kept by the handlers themselves (O(1) to read). */
export class RunningCounts {
  private readonly counts = new Map<string, number>();
  /** task id → node, to detect a task running twice at once. */
  private readonly where = new Map<string, string>();
  doubles = 0;

  handler(node: string): Handler {
    return {
      run: (task, ctx) =>
        new Promise<HandlerResult>((resolve) => {
          if (this.where.has(task.id)) this.doubles++;
          this.where.set(task.id, node);
          this.counts.set(node, (this.counts.get(node) ?? 0) + 1);
          const stop = () => {
            this.counts.set(node, (this.counts.get(node) ?? 0) - 1);
            if (this.where.get(task.id) === node) this.where.delete(task.id);
            resolve("release");
          };
          if (ctx.signal.aborted) stop();
          else ctx.signal.addEventListener("abort", stop, { once: true });
        }),
    };
  }

  on(node: string): number {
    return this.counts.get(node) ?? 0;
  }

  total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }
}

export interface BenchNode {
  readonly name: string;
  readonly consumer: Consumer;
  readonly coordinator: EtcdCoordinator;
}

export async function startNode(
  etcd: EtcdServer,
  namespace: string,
  name: string,
  counts: RunningCounts,
  leaseTtl = 10,
  options: Partial<ConsumerOptions> = {},
): Promise<BenchNode> {
  const coordinator = new EtcdCoordinator(
    { endpoints: [etcd.endpoint], namespace, node: name, leaseTtl },
    { log: silentLogger },
  );
  const consumer = new Consumer({
    coordinator,
    node: name,
    handler: counts.handler(name),
    balanceEvery: Infinity,
    log: silentLogger,
    ...options,
  });
  await consumer.start();
  return { name, consumer, coordinator };
}

export function client(etcd: EtcdServer, namespace: string): EtcdClient {
  return EtcdClient.connect({ endpoints: [etcd.endpoint], namespace }, { log: silentLogger });
}

/** Submit ids with a bounded number of requests in flight. */
export async function submitAll(c: EtcdClient, ids: readonly string[], inFlight = 64): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < ids.length) await c.submitTask(ids[next++]!);
    }),
  );
}

export function taskIds(n: number, prefix = "t"): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, "0")}`);
}

/** Poll until `probe` is true or `timeoutMs` passes; resolves with the elapsed ms (or throws). */
export async function until(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 5,
): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await probe()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A consumer in a child process (test/chaos/fixtures/child-consumer.ts). */
export class ChildNode {
  private tail = "";
  /** Tasks this child started (its handlers never return unless stopped). */
  claimed = 0;
  private isReady = false;
  readonly proc: ChildProcess;
  constructor(
    etcd: EtcdServer,
    namespace: string,
    readonly name: string,
    leaseTtl: number,
    claimConcurrency = 1,
  ) {
    const script = join(import.meta.dir, "..", "test", "chaos", "fixtures", "child-consumer.ts");
    this.proc = spawn(
      process.execPath,
      [script, etcd.endpoint, namespace, name, String(leaseTtl), String(claimConcurrency)],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    this.proc.stdout?.on("data", (chunk: Buffer) => {
      const lines = (this.tail + chunk.toString()).split("\n");
      this.tail = lines.pop() ?? "";
      for (const line of lines) {
        if (line.startsWith("claimed ")) this.claimed++;
        else if (line === "ready") this.isReady = true;
      }
    });
  }
  async ready(): Promise<void> {
    await until(`child ${this.name} to register`, () => this.isReady || this.proc.exitCode !== null, 20_000, 20);
    if (this.proc.exitCode !== null) throw new Error(`child ${this.name} exited with ${this.proc.exitCode}`);
  }
  async signal(sig: NodeJS.Signals): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((resolve) => this.proc.once("exit", resolve));
    this.proc.kill(sig);
    await exited;
  }
}

/** Owner counts per node as etcd sees them. */
export async function ownerCounts(c: EtcdClient): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const t of await c.tasks()) if (t.owner) counts.set(t.owner, (counts.get(t.owner) ?? 0) + 1);
  return counts;
}

/**
 * etcd's request counters by gRPC method: unary calls handled plus stream messages received
 * (keepalives and watch creates arrive as stream messages).
 */
export async function etcdRequestCounts(etcd: EtcdServer): Promise<Map<string, number>> {
  const text = await (await fetch(`${etcd.url}/metrics`)).text();
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^grpc_server_(handled_total|msg_received_total)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    const streaming = labels.grpc_type !== "unary";
    // Unary: count handled calls. Streams: count messages the client sent.
    if ((m[1] === "handled_total") === streaming) continue;
    const key = `${labels.grpc_service?.replace("etcdserverpb.", "")}.${labels.grpc_method}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(m[3]));
  }
  return counts;
}

export function diffCounts(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return out;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const fmt = (ms: number): string => `${Math.round(ms)} ms`;
