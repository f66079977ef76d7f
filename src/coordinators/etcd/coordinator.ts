/**
 * The etcd coordinator: Go Metafora's wire format (ref §2), with fenced claims, per-task lost
 * detection, and no path that crashes the process.
 *
 *  - One lease per node; the node marker, metadata keys and every owner key hang on it. A
 *    node name that is already live makes init fail with NodeNameTakenError.
 *  - Two mirrors (list once, then watch; relist on any doubt): tasks/ feeds the task table,
 *    announcements and lost detection; nodes/ feeds the live node set and this node's
 *    command inbox. No per-task GETs.
 *  - Claim = one txn (owner absent AND task present → owner on our lease); its revision is the
 *    fencing token. Release and done are fenced by that token.
 *  - Lease trouble (keepalives unconfirmed, lease gone, event loop stalled) → suspend: the
 *    consumer stops every handler by the recorded deadline; then the old lease is revoked and
 *    the node rejoins with a new one.
 */
import { Buffer } from "node:buffer";
import { hostname } from "node:os";
import { Range, type Etcd3, type ICompare, type IRequestOp } from "etcd3";
import { ConfigError, describeError, NodeNameTakenError } from "../../errors.ts";
import { Emitter } from "../../events.ts";
import { scopedLogger } from "../../log.ts";
import type { Claim, Coordinator, CoordinatorContext, Logger, Task } from "../../types.ts";
import { EtcdClient } from "./client.ts";
import { EtcdClusterView } from "./cluster.ts";
import { parseEtcdConfig, type EtcdConfig, type EtcdConfigInput } from "./config.ts";
import { connectEtcd } from "./connect.ts";
import { encodeMetadata, encodeOwner, Keys } from "./keys.ts";
import { NodeLease } from "./lease.ts";
import { NodeCommandInbox } from "./node-commands.ts";
import { ownerRecord, parseProps, TaskTable } from "./task-table.ts";
import { errorMessage, retryDelay, sleep } from "./timing.ts";
import { PrefixMirror, type MirrorEvent, type MirrorKv } from "./watch.ts";

export interface EtcdCoordinatorOptions {
  /** Use this connection instead of opening one from the config; close() leaves it open. */
  readonly etcd?: Etcd3;
  readonly log?: Logger;
  /** Test seams; not a stable API. */
  readonly testHooks?: {
    /** Awaited after each listing of tasks/, before the watch from the next revision starts. */
    afterTaskList?(revision: number): Promise<void>;
  };
}

/** Typed events for metrics and operators. */
export interface EtcdCoordinatorEvents {
  /** The lease was granted and the node registered (at init and at every rejoin). */
  registered: { leaseId: string; ttlSeconds: number };
  /** A keepalive was confirmed: its round trip and the claim deadline it moved to. */
  keepalive: { latencyMs: number; deadline: number };
  /** Largest event-loop lag over the last ~second. */
  loopLag: { maxMs: number };
  /** Claims can no longer be vouched for: every handler must stop by `deadline` (epoch ms). */
  suspended: { reason: string; deadline: number; leaseId: string };
  /** Rejoined with a new lease; claiming again. */
  resumed: { leaseId: string; previousLeaseId: string };
  /** A mirror listed its prefix again (compaction, watch failure, rejoin...). */
  resync: { prefix: string; reason: string };
  /** A claim of this node ended without the consumer asking (owner key deleted or changed, task deleted). */
  lost: { taskId: string; reason: "lost" | "deleted" };
}

/** etcd allows 128 compares per transaction by default (--max-txn-ops); a release needs two. */
const RELEASE_BATCH = 64;

/** Claims per transaction: two compares each, within etcd's default 128. */
const CLAIM_BATCH = 64;

interface PendingClaim {
  readonly id: string;
  readonly lease: NodeLease;
  readonly resolve: (token: number | undefined) => void;
}

interface PendingRelease {
  readonly id: string;
  readonly token: number;
  readonly resolve: () => void;
}

export type EtcdCoordinatorState = "new" | "starting" | "active" | "suspended" | "closing" | "closed";

export interface EtcdCoordinatorStats {
  readonly state: EtcdCoordinatorState;
  readonly leaseId?: string;
  readonly leaseTtlSeconds?: number;
  /** Epoch ms of the last confirmed renewal (by send time). */
  readonly lastRenewal?: number;
  readonly claimDeadline: number;
  readonly keepaliveLatencyMs?: number;
  readonly claims: number;
  readonly knownTasks: number;
  readonly suspensions: number;
  readonly resyncs: number;
}

export class EtcdCoordinator implements Coordinator {
  readonly name: string;
  readonly node: string;
  readonly config: EtcdConfig;
  readonly cluster: EtcdClusterView;
  readonly client: EtcdClient;
  private readonly keys: Keys;
  private readonly etcd: Etcd3;
  private readonly ownsConnection: boolean;
  private readonly log: Logger;
  private readonly events: Emitter<EtcdCoordinatorEvents>;
  private readonly ownerValue: string;
  private readonly hooks: EtcdCoordinatorOptions["testHooks"];
  private ctx: CoordinatorContext | undefined;
  private state: EtcdCoordinatorState = "new";
  private lease: NodeLease | undefined;
  private table = new TaskTable();
  /** Claims this node holds: task id → fencing token (owner key create revision). */
  private readonly claims = new Map<string, number>();
  /** Claims in flight: their owner events must not be mistaken for orphans. */
  private readonly claiming = new Set<string>();
  private tasksMirror: PrefixMirror | undefined;
  private nodesMirror: PrefixMirror | undefined;
  private readonly inbox: NodeCommandInbox;
  private suspendedDeadline = 0;
  private readonly warned = new Set<string>();
  private suspensions = 0;
  private resyncs = 0;
  private closing: Promise<void> | undefined;
  private readonly releaseQueue: PendingRelease[] = [];
  private readonly claimQueue: PendingClaim[] = [];
  private claimsInFlight = false;
  private releaseFlush: ReturnType<typeof setTimeout> | undefined;
  /** Announcements from one watch response, made once it has been applied (see onTasksEvents). */
  private readonly toAnnounce = new Set<string>();

  constructor(config: EtcdConfig | EtcdConfigInput, options: EtcdCoordinatorOptions = {}) {
    this.config = parseEtcdConfig(config);
    if (!this.config.node) throw new ConfigError("etcd config: node: the coordinator needs this node's name");
    this.node = this.config.node;
    this.keys = new Keys(this.config.namespace);
    this.name = `etcd:${this.keys.ns}/${this.node}`;
    this.log = options.log ?? scopedLogger(this.name);
    this.etcd = options.etcd ?? connectEtcd(this.config);
    this.ownsConnection = !options.etcd;
    this.hooks = options.testHooks;
    this.events = new Emitter<EtcdCoordinatorEvents>(this.log);
    this.ownerValue = encodeOwner(this.node);
    this.cluster = new EtcdClusterView(this.node, () => this.table);
    this.client = new EtcdClient(this.etcd, this.keys.ns, { log: this.log, requestTimeout: this.config.requestTimeout });
    this.inbox = new NodeCommandInbox({
      etcd: this.etcd,
      keys: this.keys,
      node: this.node,
      requestTimeout: this.config.requestTimeout,
      log: this.log,
      deliver: (cmd) => this.ctx?.command(cmd),
    });
  }

  on<E extends keyof EtcdCoordinatorEvents>(event: E, listener: (payload: EtcdCoordinatorEvents[E]) => void): () => void {
    return this.events.on(event, listener);
  }

  get currentState(): EtcdCoordinatorState {
    return this.state;
  }

  stats(): EtcdCoordinatorStats {
    const lease = this.lease;
    return {
      state: this.state,
      ...(lease
        ? {
            leaseId: lease.id,
            leaseTtlSeconds: lease.ttlSeconds,
            lastRenewal: lease.lastRenewedAt(),
            ...(lease.lastKeepaliveLatency() !== undefined ? { keepaliveLatencyMs: lease.lastKeepaliveLatency() } : {}),
          }
        : {}),
      claimDeadline: this.claimDeadline(),
      claims: this.claims.size,
      knownTasks: this.table.size,
      suspensions: this.suspensions,
      resyncs: this.resyncs,
    };
  }

  // ---------------------------------------------------------------------------------------
  // Lifecycle

  async init(ctx: CoordinatorContext): Promise<void> {
    if (this.state !== "new") throw new Error(`${this.name}: init called twice`);
    this.state = "starting";
    this.ctx = ctx;
    try {
      const lease = await this.register();
      this.lease = lease;
      this.startLease(lease);
      this.nodesMirror = new PrefixMirror({
        etcd: this.etcd,
        prefix: this.keys.nodesPrefix,
        log: this.log,
        requestTimeout: this.config.requestTimeout,
        listener: { snapshot: (kvs) => this.onNodesSnapshot(kvs), events: (evs) => this.onNodesEvents(evs) },
        onResync: (reason) => this.onResync(this.keys.nodesPrefix, reason),
      });
      this.tasksMirror = new PrefixMirror({
        etcd: this.etcd,
        prefix: this.keys.tasksPrefix,
        log: this.log,
        requestTimeout: this.config.requestTimeout,
        listener: { snapshot: (kvs, rev) => this.onTasksSnapshot(kvs, rev), events: (evs) => this.onTasksEvents(evs) },
        onResync: (reason) => this.onResync(this.keys.tasksPrefix, reason),
        ...(this.hooks?.afterTaskList ? { afterList: this.hooks.afterTaskList } : {}),
      });
      await this.nodesMirror.start();
      if (this.isClosing()) return;
      this.state = "active";
      await this.tasksMirror.start();
      this.log.info(`registered with lease ${lease.id} (TTL ${lease.ttlSeconds} s)`);
    } catch (err) {
      await this.teardown();
      this.state = "closed";
      throw err;
    }
  }

  /** Stop watching, revoke the lease (bounded), close the connection if we opened it. Never hangs. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.state === "closed") return;
      this.state = "closing";
      await this.teardown();
      this.state = "closed";
    })();
    return this.closing;
  }

  private async teardown(): Promise<void> {
    this.tasksMirror?.close();
    this.nodesMirror?.close();
    const lease = this.lease;
    if (lease) {
      try {
        await lease.revoke(this.config.requestTimeout);
      } catch (err) {
        this.log.warn(`could not revoke lease ${lease.id} (it expires within ${lease.ttlSeconds} s): ${errorMessage(err)}`);
      }
    }
    this.claims.clear();
    if (this.ownsConnection) {
      try {
        this.etcd.close();
      } catch {
        // already closed
      }
    }
  }

  private isClosing(): boolean {
    return this.state === "closing" || this.state === "closed";
  }

  /** Grant a lease and register the node name on it; NodeNameTakenError if the name is live. */
  private async register(): Promise<NodeLease> {
    const lease = await NodeLease.grant(this.etcd, this.config.leaseTtl, this.config.dialTimeout, this.log);
    const meta = Buffer.from(encodeMetadata(hostname(), this.node));
    const marker = Buffer.from(this.keys.node(this.node));
    const put = (key: string | Buffer): IRequestOp => ({ request_put: { key: Buffer.from(key), value: meta, lease: lease.id } });
    let registered = false;
    try {
      const res = await this.etcd.kv.txn(
        {
          compare: [{ key: marker, target: "Version", result: "Equal", version: 0 }],
          // Go's order: namespace metadata, node marker, tasks metadata, commands metadata.
          success: [put(this.keys.metadata), put(marker), put(this.keys.tasksMetadata), put(this.keys.nodeCommandsMetadata(this.node))],
        },
        { deadline: Date.now() + this.config.dialTimeout },
      );
      registered = res.succeeded;
    } catch (err) {
      await lease.revoke(this.config.requestTimeout).catch(() => undefined);
      throw err;
    }
    if (!registered) {
      await lease.revoke(this.config.requestTimeout).catch(() => undefined);
      throw new NodeNameTakenError(this.node, this.keys.ns);
    }
    this.events.emit("registered", { leaseId: lease.id, ttlSeconds: lease.ttlSeconds });
    return lease;
  }

  private startLease(lease: NodeLease): void {
    lease.on("renewed", ({ latencyMs, deadline }) => this.events.emit("keepalive", { latencyMs, deadline }));
    lease.on("loopLag", (payload) => this.events.emit("loopLag", payload));
    lease.on("trouble", ({ reason, deadline }) => this.onLeaseTrouble(lease, reason, deadline));
    lease.start();
  }

  // ---------------------------------------------------------------------------------------
  // Lease trouble: suspend, revoke, rejoin

  private onLeaseTrouble(lease: NodeLease, reason: string, deadline: number): void {
    if (lease !== this.lease || this.state !== "active") return;
    this.state = "suspended";
    this.suspendedDeadline = deadline;
    this.suspensions++;
    this.log.warn(
      `lease ${lease.id} in doubt (${reason}): stopping every task by ${new Date(deadline).toISOString()}, then rejoining with a new lease`,
    );
    this.events.emit("suspended", { reason, deadline, leaseId: lease.id });
    void this.rejoin(lease, deadline).catch((err) => this.log.error(`rejoin failed: ${describeError(err)}`));
  }

  private async rejoin(old: NodeLease, deadline: number): Promise<void> {
    let stopped: Promise<void>;
    try {
      stopped = Promise.resolve(this.ctx?.suspend(deadline));
    } catch (err) {
      this.log.error(`consumer suspend failed: ${describeError(err)}`);
      stopped = Promise.resolve();
    }
    // Wait for the handlers to stop, but not forever: after the deadline we rejoin anyway.
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      stopped.catch((err) => this.log.error(`consumer suspend failed: ${describeError(err)}`)),
      new Promise<void>((resolve) => {
        graceTimer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 1000);
      }),
    ]);
    clearTimeout(graceTimer);

    // Every claim was on the old lease. Forget them first so that the owner deletes the revoke
    // causes are not reported as lost claims; a handler that returns later releases nothing.
    this.claims.clear();
    // Revoke the old lease: whatever handler did not stop loses its claim now, deliberately.
    for (let attempt = 0; !this.isClosing(); attempt++) {
      try {
        await old.revoke(this.config.requestTimeout);
        break;
      } catch (err) {
        this.log[attempt === 0 ? "warn" : "debug"](`cannot revoke lease ${old.id} yet (etcd unreachable?): ${errorMessage(err)}`);
        await sleep(retryDelay(attempt));
      }
    }

    let lease: NodeLease | undefined;
    for (let attempt = 0; !this.isClosing() && !lease; attempt++) {
      try {
        lease = await this.register();
      } catch (err) {
        if (err instanceof NodeNameTakenError) this.log.error(`cannot rejoin: ${err.message}; retrying`);
        else this.log[attempt === 0 ? "warn" : "debug"](`cannot rejoin yet: ${errorMessage(err)}`);
        await sleep(retryDelay(attempt + 2));
      }
    }
    if (!lease) return;
    if (this.isClosing()) {
      await lease.revoke(this.config.requestTimeout).catch(() => undefined);
      return;
    }
    this.lease = lease;
    this.startLease(lease);
    this.state = "active";
    this.log.info(`rejoined with lease ${lease.id} (TTL ${lease.ttlSeconds} s), claiming again`);
    this.events.emit("resumed", { leaseId: lease.id, previousLeaseId: old.id });
    try {
      this.ctx?.resume();
    } catch (err) {
      this.log.error(`consumer resume failed: ${describeError(err)}`);
    }
    // Announce everything claimable again (announcements during the suspension were ignored).
    this.tasksMirror?.resync("rejoined with a new lease");
  }

  // ---------------------------------------------------------------------------------------
  // Claims

  claimDeadline(): number {
    if (this.state === "suspended") return this.suspendedDeadline;
    if (this.isClosing()) return 0;
    return this.lease ? this.lease.claimDeadline() : Infinity;
  }

  async claim(task: Task): Promise<Claim | undefined> {
    const lease = this.lease;
    const id = task.id;
    if (this.state !== "active" || !lease || this.claims.has(id) || this.claiming.has(id)) return undefined;
    // Already claimed as far as the watch has seen: save etcd the doomed transaction. (A stale
    // view only delays this node: the owner's delete event announces the task again.)
    if (this.table.get(id)?.owner) return undefined;
    this.claiming.add(id);
    let token: number | undefined;
    try {
      token = await new Promise<number | undefined>((resolve) => {
        this.claimQueue.push({ id, lease, resolve });
        if (!this.claimsInFlight) void this.pumpClaims();
      });
    } finally {
      this.claiming.delete(id);
    }
    if (token === undefined) return undefined;
    if (lease !== this.lease || this.state !== "active") return undefined; // the old lease is being revoked
    // The watch may already have seen this claim end (owner deleted or replaced).
    if (this.tasksMirror && this.tasksMirror.revision >= token && this.table.get(id)?.owner?.createRevision !== token) {
      return undefined;
    }
    this.claims.set(id, token);
    return { token };
  }

  /**
   * Claims go to etcd one transaction at a time; claims asked for while one is in flight (a
   * consumer with claimConcurrency > 1, a backlog) share the next transaction, up to
   * CLAIM_BATCH of them. With one claim at a time this is exactly ref §2.7's transaction.
   */
  private async pumpClaims(): Promise<void> {
    this.claimsInFlight = true;
    try {
      while (this.claimQueue.length > 0) {
        const batch = this.claimQueue.splice(0, CLAIM_BATCH);
        const current = batch.filter((c) => c.lease === this.lease && this.state === "active");
        for (const c of batch) if (!current.includes(c)) c.resolve(undefined);
        if (current.length === 1) current[0]!.resolve(await this.claimOne(current[0]!.id, current[0]!.lease));
        else if (current.length > 1) await this.claimMany(current);
      }
    } finally {
      this.claimsInFlight = false;
    }
  }

  /** Ref §2.7: owner absent AND task present → owner on our lease. Resolves the token. */
  private async claimOne(id: string, lease: NodeLease): Promise<number | undefined> {
    const owner = Buffer.from(this.keys.owner(id));
    try {
      const res = await this.etcd.kv.txn(
        {
          compare: this.claimConditions(id),
          success: [this.ownerPut(id, lease)],
          failure: [{ request_range: { key: owner } }],
        },
        { deadline: Date.now() + this.config.requestTimeout },
      );
      if (res.succeeded) return Number(res.header.revision);
      // etcd3 retries failed requests; an earlier attempt of this very claim may have won.
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (kv && kv.lease === lease.id && kv.value.toString() === this.ownerValue) return Number(kv.create_revision);
    } catch (err) {
      this.log.debug(`claim of ${id} failed: ${errorMessage(err)}`);
      // The txn may have landed even though we got no answer: check later, release if so.
      setTimeout(() => void this.releaseIfOrphan(id), 1000);
    }
    return undefined;
  }

  /**
   * Several claims in one transaction. All conditions must hold for it to succeed; when one
   * does not, the failure branch reads every owner and task key, the claims that cannot win are
   * dropped, and the rest are tried again.
   */
  private async claimMany(batch: PendingClaim[]): Promise<void> {
    let remaining = batch;
    for (let round = 0; remaining.length > 1 && round < 3; round++) {
      const lease = remaining[0]!.lease;
      let res;
      try {
        res = await this.etcd.kv.txn(
          {
            compare: remaining.flatMap((c) => this.claimConditions(c.id)),
            success: remaining.map((c) => this.ownerPut(c.id, lease)),
            failure: remaining.flatMap((c) => [
              { request_range: { key: Buffer.from(this.keys.owner(c.id)) } },
              { request_range: { key: Buffer.from(this.keys.task(c.id)), count_only: true } },
            ]),
          },
          { deadline: Date.now() + this.config.requestTimeout },
        );
      } catch (err) {
        this.log.debug(`claim of ${remaining.length} tasks failed: ${errorMessage(err)}`);
        for (const c of remaining) {
          setTimeout(() => void this.releaseIfOrphan(c.id), 1000);
          c.resolve(undefined);
        }
        return;
      }
      if (res.succeeded) {
        for (const c of remaining) c.resolve(Number(res.header.revision));
        return;
      }
      const next: PendingClaim[] = [];
      remaining.forEach((c, i) => {
        const owner = res.responses[2 * i]?.response_range?.kvs[0];
        const taskExists = Number(res.responses[2 * i + 1]?.response_range?.count ?? 0) > 0;
        if (owner) {
          const ours = owner.lease === lease.id && owner.value.toString() === this.ownerValue;
          c.resolve(ours ? Number(owner.create_revision) : undefined);
        } else if (!taskExists) c.resolve(undefined);
        else next.push(c);
      });
      remaining = next;
    }
    for (const c of remaining) c.resolve(await this.claimOne(c.id, c.lease));
  }

  private claimConditions(id: string): ICompare[] {
    return [
      { key: Buffer.from(this.keys.owner(id)), target: "Version", result: "Equal", version: 0 },
      { key: Buffer.from(this.keys.task(id)), target: "Version", result: "Greater", version: 0 },
    ];
  }

  private ownerPut(id: string, lease: NodeLease): IRequestOp {
    return { request_put: { key: Buffer.from(this.keys.owner(id)), value: Buffer.from(this.ownerValue), lease: lease.id } };
  }

  async release(task: Task): Promise<void> {
    const token = this.claims.get(task.id);
    if (token === undefined) {
      this.log.debug(`release of ${task.id}: no claim held (lost, or ended with an old lease)`);
      return;
    }
    this.claims.delete(task.id);
    if (this.isClosing()) return; // the lease revoke ends the claim
    await new Promise<void>((resolve) => {
      this.releaseQueue.push({ id: task.id, token, resolve });
      this.releaseFlush ??= setTimeout(() => this.flushReleases(), 0);
    });
  }

  /**
   * Releases that arrive together (a shutdown or suspension releases everything at once) go
   * to etcd as a few transactions of up to RELEASE_BATCH fenced deletes each instead of one
   * transaction per task: far less load on etcd exactly when other nodes need it to claim.
   */
  private flushReleases(): void {
    this.releaseFlush = undefined;
    while (this.releaseQueue.length > 0) {
      const batch = this.releaseQueue.splice(0, RELEASE_BATCH);
      void this.releaseBatch(batch).finally(() => {
        for (const entry of batch) entry.resolve();
      });
    }
  }

  private async releaseBatch(batch: PendingRelease[]): Promise<void> {
    if (batch.length === 1) {
      await this.deleteOwner(batch[0]!.id, batch[0]!.token);
      return;
    }
    await this.withRetries(`release ${batch.length} tasks`, async () => {
      const res = await this.etcd.kv.txn(
        {
          compare: batch.flatMap((b) => this.ownerFence(b.id, b.token)),
          success: batch.map((b) => ({ request_delete_range: { key: Buffer.from(this.keys.owner(b.id)) } })),
        },
        { deadline: Date.now() + this.config.requestTimeout },
      );
      // Some claim in the batch had already ended (lost, revoked): release the rest one by one.
      if (!res.succeeded) await Promise.all(batch.map((b) => this.deleteOwner(b.id, b.token)));
    });
  }

  /** Compares that hold only while our claim with this token stands unchanged. */
  private ownerFence(id: string, token: number): ICompare[] {
    const owner = Buffer.from(this.keys.owner(id));
    return [
      { key: owner, target: "Create", result: "Equal", create_revision: token },
      { key: owner, target: "Value", result: "Equal", value: Buffer.from(this.ownerValue) },
    ];
  }

  async done(task: Task): Promise<void> {
    const id = task.id;
    const token = this.claims.get(id);
    this.claims.delete(id);
    if (this.state === "closed") {
      this.log.warn(`task ${id} finished after close; it was not deleted and will run again`);
      return;
    }
    const ownerKey = Buffer.from(this.keys.owner(id));
    const children = Range.prefix(this.keys.taskChildren(id));
    const deletes: IRequestOp[] = [
      { request_delete_range: { key: Buffer.from(this.keys.task(id)) } },
      { request_delete_range: { key: children.start, range_end: children.end } },
    ];
    await this.withRetries(`delete finished task ${id}`, async () => {
      // Fenced: only while our claim stands, or nobody holds one (our lease ended meanwhile).
      const compare: ICompare[] =
        token !== undefined ? this.ownerFence(id, token) : [{ key: ownerKey, target: "Version", result: "Equal", version: 0 }];
      const res = await this.etcd.kv.txn(
        { compare, success: deletes, failure: [{ request_range: { key: ownerKey } }] },
        { deadline: Date.now() + this.config.requestTimeout },
      );
      if (res.succeeded) return;
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (!kv) {
        // Our claim ended (lease) before we could delete: nobody owns it, so finish the job.
        const again = await this.etcd.kv.txn(
          { compare: [{ key: ownerKey, target: "Version", result: "Equal", version: 0 }], success: deletes },
          { deadline: Date.now() + this.config.requestTimeout },
        );
        if (again.succeeded) return;
      }
      this.log.warn(`task ${id} finished here, but another claim holds it now; leaving it to that owner`);
    });
  }

  /** Delete our owner key, fenced by its create revision (never someone else's newer claim). */
  private async deleteOwner(id: string, token: number): Promise<void> {
    const owner = Buffer.from(this.keys.owner(id));
    await this.withRetries(`release ${id}`, async () => {
      await this.etcd.kv.txn(
        { compare: this.ownerFence(id, token), success: [{ request_delete_range: { key: owner } }] },
        { deadline: Date.now() + this.config.requestTimeout },
      );
    });
  }

  /** An owner key with our name that no claim of ours accounts for: delete it. */
  private async releaseIfOrphan(id: string, createRevision?: number): Promise<void> {
    if (this.isClosing() || this.claims.has(id) || this.claiming.has(id)) return;
    try {
      const res = await this.etcd.kv.range({ key: Buffer.from(this.keys.owner(id)) }, { deadline: Date.now() + this.config.requestTimeout });
      const kv = res.kvs[0];
      if (!kv || kv.value.toString() !== this.ownerValue) return;
      const rev = Number(kv.create_revision);
      if (createRevision !== undefined && rev !== createRevision) return;
      if (this.claims.has(id) || this.claiming.has(id)) return;
      this.log.info(`releasing a claim on ${id} that this node holds but does not run`);
      await this.deleteOwner(id, rev);
    } catch (err) {
      this.log.debug(`orphan check of ${id} failed: ${errorMessage(err)}`);
    }
  }

  /**
   * A few quick attempts, then keep trying in the background while the node is up: a release
   * that never lands would keep the task from everyone until the lease ends.
   */
  private async withRetries(what: string, op: () => Promise<void>): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await op();
        return;
      } catch (err) {
        if (this.state === "closed") return;
        if (attempt === 2) {
          this.log.warn(`could not ${what}, retrying in the background: ${errorMessage(err)}`);
          void this.retryInBackground(what, op);
          return;
        }
        await sleep(retryDelay(attempt));
      }
    }
  }

  private async retryInBackground(what: string, op: () => Promise<void>): Promise<void> {
    const lease = this.lease;
    for (let attempt = 2; attempt < 30; attempt++) {
      await sleep(retryDelay(attempt));
      // Once the lease changed, the old lease's revoke has already ended the claim.
      if (this.isClosing() || this.lease !== lease) return;
      try {
        await op();
        return;
      } catch (err) {
        this.log.debug(`could not ${what} yet: ${errorMessage(err)}`);
      }
    }
    this.log.error(`gave up trying to ${what}`);
  }

  // ---------------------------------------------------------------------------------------
  // tasks/ mirror

  private onTasksSnapshot(kvs: MirrorKv[], revision: number): void {
    const previous = this.table;
    const next = TaskTable.fromSnapshot(kvs, this.keys);
    this.table = next;
    for (const [id, token] of [...this.claims]) {
      if (token > revision) continue; // claimed after this listing; the watch covers it
      const record = next.get(id);
      if (record?.owner?.createRevision !== token) this.loseClaim(id, record?.exists ? "lost" : "deleted");
    }
    for (const record of previous.all()) {
      const now = next.get(record.id);
      const wasClaimable = record.exists && !record.owner;
      if (wasClaimable && (!now?.exists || now.owner)) this.ctx?.withdraw(record.id);
    }
    const claimable: string[] = [];
    for (const record of next.all()) {
      const owner = record.owner;
      if (owner) {
        if (owner.node === undefined) this.warnMalformedOwner(record.id, owner.raw, owner.createRevision);
        else if (owner.node === this.node && !this.claims.has(record.id) && !this.claiming.has(record.id)) {
          void this.releaseIfOrphan(record.id, owner.createRevision);
        }
      } else if (record.exists) {
        claimable.push(record.id);
      }
    }
    // Every node lists the same backlog; announced in key order, they would all race for the
    // same task at the same moment and most claims would lose. A random order per node keeps
    // their attempts mostly disjoint.
    shuffle(claimable);
    for (const id of claimable) this.announce(id);
  }

  private onTasksEvents(events: MirrorEvent[]): void {
    for (const ev of events) {
      const parsed = this.keys.parseTaskKey(ev.kv.key);
      if (!parsed) continue;
      const { id, part } = parsed;
      if (part === "task") this.onTaskKey(id, ev);
      else if (part === "props") this.onPropsKey(id, ev);
      else if (part === "owner") this.onOwnerKey(id, ev);
      // tasks/T/commands belongs to the state machine's listener.
    }
    // A response can carry many tasks at once (a batch release, a bulk submit). Every node gets
    // the same list; announcing it in a per-node random order keeps their claims apart.
    const ids = [...this.toAnnounce];
    this.toAnnounce.clear();
    shuffle(ids);
    for (const id of ids) {
      const record = this.table.get(id);
      if (record?.exists && !record.owner) this.announce(id);
    }
  }

  private onTaskKey(id: string, ev: MirrorEvent): void {
    if (ev.type === "put") {
      this.table.setExists(id, true);
      if (!this.table.get(id)?.owner) this.toAnnounce.add(id);
      return;
    }
    this.table.setExists(id, false);
    if (this.claims.has(id)) this.loseClaim(id, "deleted");
    else this.ctx?.withdraw(id);
  }

  private onPropsKey(id: string, ev: MirrorEvent): void {
    if (ev.type === "delete") {
      this.table.setProps(id, undefined, 0);
      return;
    }
    this.table.setProps(id, ev.kv.value, ev.kv.modRevision);
    const record = this.table.get(id);
    if (record?.exists && !record.owner) this.toAnnounce.add(id); // props arrived after the task key
  }

  private onOwnerKey(id: string, ev: MirrorEvent): void {
    const token = this.claims.get(id);
    if (ev.type === "delete") {
      const previous = this.table.get(id)?.owner;
      this.table.setOwner(id, undefined);
      if (token !== undefined && previous?.createRevision === token) this.loseClaim(id, "lost");
      if (this.table.get(id)?.exists) this.toAnnounce.add(id);
      return;
    }
    const owner = ownerRecord(ev.kv);
    this.table.setOwner(id, owner);
    if (owner.node === undefined) this.warnMalformedOwner(id, owner.raw, owner.createRevision);
    if (token !== undefined) {
      if (owner.createRevision !== token || owner.node !== this.node) this.loseClaim(id, "lost");
      return;
    }
    if (owner.node === this.node && !this.claiming.has(id)) {
      void this.releaseIfOrphan(id, owner.createRevision);
      return;
    }
    if (owner.node !== this.node) this.ctx?.withdraw(id);
  }

  private loseClaim(id: string, reason: "lost" | "deleted"): void {
    this.claims.delete(id);
    this.log.warn(reason === "deleted" ? `task ${id} was deleted while this node ran it` : `lost the claim on ${id} (owner key deleted or replaced)`);
    this.events.emit("lost", { taskId: id, reason });
    try {
      this.ctx?.lost(id, reason);
    } catch (err) {
      this.log.error(`consumer lost(${id}) failed: ${describeError(err)}`);
    }
  }

  private announce(id: string): void {
    const record = this.table.get(id);
    if (!record) return;
    const props = parseProps(record.propsRaw);
    if (!props.ok) {
      this.warnOnce(`props ${id} ${record.propsRevision}`, `skipping task ${id}: props at ${this.keys.props(id)} are ${props.error}`);
      return;
    }
    try {
      this.ctx?.announce({ id, props: props.props });
    } catch (err) {
      this.log.error(`consumer announce(${id}) failed: ${describeError(err)}`);
    }
  }

  private warnMalformedOwner(id: string, raw: string, revision: number): void {
    this.warnOnce(
      `owner ${id} ${revision}`,
      `owner value at ${this.keys.owner(id)} is not {"node": string} (${JSON.stringify(raw.slice(0, 100))}); treating the task as claimed by someone else`,
    );
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    if (this.warned.size > 10_000) this.warned.clear();
    this.warned.add(key);
    this.log.warn(message);
  }

  // ---------------------------------------------------------------------------------------
  // nodes/ mirror

  private onNodesSnapshot(kvs: MirrorKv[]): void {
    const names: string[] = [];
    for (const kv of kvs) {
      const parsed = this.keys.parseNodeKey(kv.key);
      if (parsed?.part === "marker") names.push(parsed.node);
    }
    this.cluster.setNodes(names);
    this.inbox.snapshot(kvs);
  }

  private onNodesEvents(events: MirrorEvent[]): void {
    for (const ev of events) {
      const parsed = this.keys.parseNodeKey(ev.kv.key);
      if (parsed?.part !== "marker") continue;
      if (ev.type === "put") this.cluster.addNode(parsed.node);
      else {
        this.cluster.removeNode(parsed.node);
        if (parsed.node === this.node && this.state === "active") void this.reclaimName();
      }
    }
    this.inbox.events(events);
  }

  /** Our marker vanished while our lease lives (deleted by hand): put it back so the name stays taken. */
  private async reclaimName(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    const marker = Buffer.from(this.keys.node(this.node));
    try {
      const res = await this.etcd.kv.txn(
        {
          compare: [{ key: marker, target: "Version", result: "Equal", version: 0 }],
          success: [{ request_put: { key: marker, value: Buffer.from(encodeMetadata(hostname(), this.node)), lease: lease.id } }],
        },
        { deadline: Date.now() + this.config.requestTimeout },
      );
      if (res.succeeded) this.log.warn(`node marker ${this.keys.node(this.node)} was deleted; registered again`);
    } catch (err) {
      // A lease that is gone makes this fail; the keepalive reports that and we rejoin.
      this.log.debug(`could not re-register the node marker: ${errorMessage(err)}`);
    }
  }

  private onResync(prefix: string, reason: string): void {
    this.resyncs++;
    this.log.info(`listing ${prefix} again: ${reason}`);
    this.events.emit("resync", { prefix, reason });
  }
}

function shuffle<T>(items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
