/**
 * Helpers for etcd integration tests: a CoordinatorContext that records what the coordinator
 * tells its consumer (the coordinator is real, etcd is real; only the consumer is replaced), a
 * logger that keeps lines for assertions, unique namespaces, and a registry that closes every
 * coordinator and consumer a test made. The capturing logger is test/support/logger.ts's.
 */
import type { Etcd3 } from "etcd3";
import { EtcdCoordinator, type EtcdCoordinatorOptions } from "../../src/coordinators/etcd/coordinator.ts";
import { EtcdClient } from "../../src/coordinators/etcd/client.ts";
import type { EtcdConfigInput } from "../../src/coordinators/etcd/config.ts";
import type { CoordinatorContext, Logger, NodeCommand, Task } from "../../src/types.ts";
import type { EtcdServer } from "../support/etcd.ts";
import { CapturingLogger } from "../support/logger.ts";

export { CapturingLogger } from "../support/logger.ts";

/** Records every call a coordinator makes into its consumer. */
export class RecordingContext implements CoordinatorContext {
  readonly announced: Task[] = [];
  readonly withdrawn: string[] = [];
  readonly commands: NodeCommand[] = [];
  readonly lostCalls: { id: string; reason: "lost" | "deleted"; at: number }[] = [];
  readonly suspends: { deadline: number; at: number }[] = [];
  resumes = 0;
  /** What suspend() does; default: resolve at once (no handlers here). */
  onSuspend: (deadline: number) => Promise<void> = async () => {};

  constructor(
    readonly node: string,
    readonly log: Logger = new CapturingLogger(),
  ) {}

  announce(task: Task): void {
    this.announced.push(task);
  }
  withdraw(taskId: string): void {
    this.withdrawn.push(taskId);
  }
  command(cmd: NodeCommand): void {
    this.commands.push(cmd);
  }
  lost(taskId: string, reason: "lost" | "deleted"): void {
    this.lostCalls.push({ id: taskId, reason, at: Date.now() });
  }
  suspend(deadline: number): Promise<void> {
    this.suspends.push({ deadline, at: Date.now() });
    return this.onSuspend(deadline);
  }
  resume(): void {
    this.resumes++;
  }

  announcedIds(): Set<string> {
    return new Set(this.announced.map((t) => t.id));
  }
  lastAnnounced(id: string): Task | undefined {
    for (let i = this.announced.length - 1; i >= 0; i--) if (this.announced[i]?.id === id) return this.announced[i];
    return undefined;
  }
}

let counter = 0;
/** A namespace no other test uses. */
export function uniqueNamespace(label: string): string {
  return `/test-${label}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Closes everything registered, in reverse order, ignoring errors (for afterEach). */
export class Cleanup {
  private readonly fns: (() => unknown)[] = [];
  add<T>(value: T, close: (value: T) => unknown): T {
    this.fns.push(() => close(value));
    return value;
  }
  async run(): Promise<void> {
    const fns = this.fns.splice(0).reverse();
    for (const fn of fns) {
      try {
        await fn();
      } catch {
        // best effort
      }
    }
  }
}

export interface CoordinatorSetup {
  etcd: EtcdServer;
  namespace: string;
  node: string;
  cleanup: Cleanup;
  config?: Partial<EtcdConfigInput>;
  options?: EtcdCoordinatorOptions;
}

/** A real EtcdCoordinator on the test etcd (short lease for fast tests), closed by cleanup. */
export function makeCoordinator(s: CoordinatorSetup): EtcdCoordinator {
  const log = s.options?.log ?? new CapturingLogger();
  const coordinator = new EtcdCoordinator(
    { endpoints: [s.etcd.endpoint], namespace: s.namespace, node: s.node, leaseTtl: 3, ...s.config },
    { ...s.options, log },
  );
  return s.cleanup.add(coordinator, (c) => withTimeoutOrNothing(c.close(), 10_000));
}

/** A client with its own connection, closed by cleanup. */
export function makeClient(etcd: EtcdServer, namespace: string, cleanup: Cleanup): EtcdClient {
  return cleanup.add(
    EtcdClient.connect({ endpoints: [etcd.endpoint], namespace }, { log: new CapturingLogger() }),
    (c) => c.close(),
  );
}

/** A raw etcd3 client for writing keys by hand (as Go would), closed by cleanup. */
export function rawClient(etcd: EtcdServer, cleanup: Cleanup): Etcd3 {
  return cleanup.add(etcd.client(), (c) => c.close());
}

async function withTimeoutOrNothing(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
