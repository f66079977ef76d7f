/**
 * Consumer-level test rig: real Consumers on real EtcdCoordinators, with a shared ledger that
 * records every handler start and stop and flags two concurrent runs of one task.
 */
import { EtcdCoordinator } from "../../src/coordinators/etcd/coordinator.ts";
import { Consumer, type ConsumerOptions } from "../../src/consumer/consumer.ts";
import type { Handler, HandlerResult, StopReason } from "../../src/types.ts";
import type { EtcdServer } from "../support/etcd.ts";
import { CapturingLogger, type Cleanup } from "./helpers.ts";

export interface RunRecord {
  readonly task: string;
  readonly node: string;
  readonly token: number;
  readonly started: number;
  stopped?: number;
  reason?: StopReason;
}

export class RunLedger {
  /** task id → runs that have started and not returned. */
  private readonly active = new Map<string, RunRecord[]>();
  readonly runs: RunRecord[] = [];
  /** Descriptions of moments where one task ran on two nodes at once. */
  readonly overlaps: string[] = [];
  /** Tasks whose handler should ignore its abort signal until released by unstick(). */
  private readonly stuck = new Map<string, () => void>();

  handler(node: string): Handler {
    return {
      name: "ledger",
      run: async (task, ctx): Promise<HandlerResult> => {
        const record: RunRecord = { task: task.id, node, token: ctx.token, started: Date.now() };
        const active = this.active.get(task.id) ?? [];
        if (active.length > 0) {
          this.overlaps.push(
            `${task.id} started on ${node} (token ${ctx.token}) while running on ${active.map((r) => `${r.node} (token ${r.token})`).join(", ")}`,
          );
        }
        active.push(record);
        this.active.set(task.id, active);
        this.runs.push(record);
        await new Promise<void>((resolve) => {
          if (ctx.signal.aborted) resolve();
          else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        record.stopped = Date.now();
        const reason = (ctx.signal.reason as { reason?: StopReason } | undefined)?.reason;
        if (reason) record.reason = reason;
        const gate = this.stuckGate(task.id);
        if (gate) await gate;
        const list = this.active.get(task.id) ?? [];
        list.splice(list.indexOf(record), 1);
        if (list.length === 0) this.active.delete(task.id);
        return "release";
      },
    };
  }

  /** Make `task`'s handler ignore its stop signal until unstick(task). */
  stick(task: string): void {
    if (!this.stuck.has(task)) this.stuck.set(task, () => {});
  }

  unstick(task: string): void {
    const release = this.stuck.get(task);
    this.stuck.delete(task);
    release?.();
  }

  private stuckGate(task: string): Promise<void> | undefined {
    if (!this.stuck.has(task)) return undefined;
    return new Promise((resolve) => this.stuck.set(task, resolve));
  }

  /** Ids of tasks currently running on `node`, sorted. */
  runningOn(node: string): string[] {
    const ids: string[] = [];
    for (const [id, records] of this.active) if (records.some((r) => r.node === node)) ids.push(id);
    return ids.sort();
  }

  /** Number of tasks running somewhere right now. */
  runningCount(): number {
    return this.active.size;
  }

  /** True when every id runs on exactly one node. */
  eachRunningOnce(ids: readonly string[]): boolean {
    return ids.every((id) => this.active.get(id)?.length === 1) && this.active.size === ids.length;
  }
}

export interface NodeOptions {
  leaseTtl?: number;
  consumer?: Partial<ConsumerOptions>;
}

export interface TestNode {
  readonly name: string;
  readonly consumer: Consumer;
  readonly coordinator: EtcdCoordinator;
  readonly log: CapturingLogger;
}

/** Start a consumer on an etcd coordinator; shut down by cleanup. */
export async function startNode(
  etcd: EtcdServer,
  namespace: string,
  name: string,
  ledger: RunLedger,
  cleanup: Cleanup,
  opts: NodeOptions = {},
): Promise<TestNode> {
  const log = new CapturingLogger();
  const coordinator = new EtcdCoordinator(
    { endpoints: [etcd.endpoint], namespace, node: name, leaseTtl: opts.leaseTtl ?? 3 },
    { log },
  );
  const consumer = new Consumer({
    coordinator,
    node: name,
    handler: ledger.handler(name),
    // Tests here move tasks only when they say so (balanceNow, commands, shutdown).
    balanceEvery: Infinity,
    rebalance: false,
    log,
    ...opts.consumer,
  });
  // Cleanup runs in reverse: the consumer shuts down (releasing its tasks) before the close.
  cleanup.add(coordinator, (c) => c.close());
  cleanup.add(consumer, (c) => c.shutdown({ timeout: 5000 }));
  await consumer.start();
  return { name, consumer, coordinator, log };
}
