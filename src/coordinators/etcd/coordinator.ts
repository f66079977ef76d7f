/**
 * The etcd coordinator: Go Metafora's wire format (docs/wire-format.md), with fenced claims, per-task lost
 * detection, and no path that crashes the process.
 *
 *  - One lease per node; the node marker, metadata keys and every owner key hang on it. A
 *    node name that is already live makes init fail with NodeNameTakenError.
 *  - Two mirrors (list once, then watch; relist on any doubt): tasks/ feeds the task table,
 *    announcements and lost detection; nodes/ feeds the live node set and this node's
 *    command inbox. No per-task GETs.
 *  - Claim = one txn (owner absent AND task present → owner on our lease); its revision is the
 *    fencing token. Release and done are fenced by that token.
 *  - Lease in doubt (keepalives unconfirmed for a while, deadline still ahead) → new claims
 *    wait; a confirmed keepalive lets them go on, handlers never noticed.
 *  - Lease trouble (keepalives unconfirmed too long, lease gone, event loop stalled) → suspend:
 *    the consumer stops every handler by the recorded deadline; then the old lease is revoked
 *    and the node rejoins with a new one.
 */
import type { Etcd3 } from "etcd3";
import { ClaimLostError, ConfigError, describeError, NodeNameTakenError, errorLine } from "../../errors.ts";
import { Emitter } from "../../events.ts";
import { settleWithin } from "../../internal/timers.ts";
import { scopedLogger } from "../../log.ts";
import type { Claim, Coordinator, CoordinatorContext, Logger, Task } from "../../types.ts";
import { EtcdClient } from "./client.ts";
import { EtcdClusterView } from "./cluster.ts";
import { parseEtcdConfig, type EtcdConfig, type EtcdConfigInput } from "./config.ts";
import { connectEtcd } from "./connect.ts";
import { encodeOwner, Keys, markerSaysStandby } from "./keys.ts";
import { leaseTiming, type NodeLease, toEpoch } from "./lease.ts";
import { NodeCommandInbox } from "./node-commands.ts";
import { ClaimOps, type ClaimWin, UNKNOWN_CHECKPOINT } from "./claim-ops.ts";
import { TaskView } from "./task-view.ts";
import { retryDelay, sleep } from "./timing.ts";
import { markNode, markReady, registerNode, restoreNodeMarker, onLease } from "./registration.ts";
import { PrefixMirror, type MirrorEvent, type MirrorKv } from "./watch.ts";

/**
 * Longest a release waits for the leaving mark at shutdown. The mark only speeds the handoff
 * up; a slow etcd must not hold releases back for a whole request timeout.
 */
const LEAVING_MARK_TIMEOUT_MS = 1000;

export interface EtcdCoordinatorOptions {
  /** Use this connection instead of opening one from the config; close() leaves it open. */
  readonly etcd?: Etcd3;
  readonly log?: Logger;
  /** Test seams; not a stable API. */
  readonly testHooks?: {
    /** Awaited after each listing of tasks/, before the watch from the next revision starts. */
    afterTaskList?(revision: number): Promise<void>;
    /** Awaited before each claim transaction is sent, with the tasks it claims. */
    beforeClaimTxn?(ids: readonly string[]): Promise<void>;
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
  /** No keepalive confirmed for a while: new claims wait; handlers run on (until `suspendAt`, epoch ms, at the latest). */
  doubt: { reason: string; leaseId: string; suspendAt: number };
  /** A keepalive was confirmed again during a doubt: claims go on. */
  reassured: { leaseId: string; doubtMs: number };
  /** Claims can no longer be vouched for: every handler must stop by `deadline` (epoch ms). */
  suspended: { reason: string; deadline: number; leaseId: string };
  /** Rejoined with a new lease; claiming again. */
  resumed: { leaseId: string; previousLeaseId: string };
  /** A mirror listed its prefix again (compaction, watch failure, rejoin...). */
  resync: { prefix: string; reason: string };
  /** A claim of this node ended without the consumer asking (owner key deleted or changed, task deleted). */
  lost: { taskId: string; reason: "lost" | "deleted" };
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
  /** Claims waiting for the lease to be confirmed again (in doubt). */
  readonly claimsWaiting: number;
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
  private readonly view: TaskView;
  private readonly ops: ClaimOps;
  private tasksMirror: PrefixMirror | undefined;
  private nodesMirror: PrefixMirror | undefined;
  private readonly inbox: NodeCommandInbox;
  /** While suspended: the claim deadline recorded then (performance.now() ms). */
  private suspendedDeadline = 0;
  private suspensions = 0;
  /** While the lease is in doubt: claims wait for this; resolved when the doubt ends either way. */
  private doubtEnded: { promise: Promise<void>; resolve: () => void } | undefined;
  private claimsWaiting = 0;
  private resyncs = 0;
  private closing: Promise<void> | undefined;
  /** Set once shutdown began: the write of the leaving marker, settled either way. */
  private leavingMarked: Promise<void> | undefined;
  /** The lease revoke that handed off the last claims of a leaving node (never rejects). */
  private handoff: Promise<void> | undefined;
  /** Lease trouble reported before init made the node active; handled right after. */
  private earlyTrouble: { reason: string; deadline: number; deadlineMonotonic: number } | undefined;

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
    this.view = new TaskView({
      keys: this.keys,
      node: this.node,
      log: this.log,
      context: () => this.ctx,
      orphan: (id, createRevision) => void this.ops.releaseIfOrphan(id, createRevision),
      lost: (taskId, reason) => this.events.emit("lost", { taskId, reason }),
      liveNodes: () => this.cluster.liveNodes(),
      unclaimedCount: () => this.cluster.unclaimedCount(),
    });
    this.ops = new ClaimOps({
      etcd: this.etcd,
      keys: this.keys,
      ownerValue: this.ownerValue,
      requestTimeout: this.config.requestTimeout,
      log: this.log,
      activeLease: () => (this.state === "active" ? this.lease : undefined),
      alive: () => !this.isClosing(),
      isHeld: (id) => this.view.isHeld(id),
      mayHaveLanded: (id) => this.view.claimMayHaveLanded(id),
      ...(this.hooks?.beforeClaimTxn ? { beforeClaimTxn: this.hooks.beforeClaimTxn } : {}),
    });
    this.cluster = new EtcdClusterView(this.node, () => this.view.table);
    this.client = new EtcdClient(this.etcd, this.keys.ns, {
      log: this.log,
      requestTimeout: this.config.requestTimeout,
    });
    this.inbox = new NodeCommandInbox({
      etcd: this.etcd,
      keys: this.keys,
      node: this.node,
      requestTimeout: this.config.requestTimeout,
      log: this.log,
      deliver: (cmd) => this.ctx?.command(cmd),
    });
  }

  on<E extends keyof EtcdCoordinatorEvents>(
    event: E,
    listener: (payload: EtcdCoordinatorEvents[E]) => void,
  ): () => void {
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
      claims: this.view.claims.size,
      knownTasks: this.view.table.size,
      suspensions: this.suspensions,
      resyncs: this.resyncs,
      claimsWaiting: this.claimsWaiting,
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
        listener: {
          snapshot: (kvs, rev) => this.view.snapshot(kvs, rev),
          beginSnapshot: () => this.view.beginSnapshot(),
          events: (evs) => this.view.events(evs),
        },
        onResync: (reason) => this.onResync(this.keys.tasksPrefix, reason),
        ...(this.hooks?.afterTaskList ? { afterList: this.hooks.afterTaskList } : {}),
      });
      await this.nodesMirror.start();
      if (this.isClosing()) return;
      this.state = "active";
      const early = this.earlyTrouble;
      if (early) this.onLeaseTrouble(lease, early.reason, early.deadlineMonotonic);
      await this.tasksMirror.start();
      await this.markReady(lease);
      this.log.info(`registered with lease ${lease.id} (TTL ${lease.ttlSeconds} s)`);
    } catch (err) {
      await this.teardown();
      this.state = "closed";
      throw err;
    }
  }

  /** The node has its task table: the others may count it now (see markReady). */
  private markReady(lease: NodeLease): Promise<void> {
    return markReady({
      etcd: this.etcd,
      keys: this.keys,
      node: this.node,
      leaseId: lease.id,
      timeoutMs: this.config.requestTimeout,
      log: this.log,
      current: () => lease === this.lease && !this.isClosing(),
    });
  }

  /**
   * Shutdown has begun: mark the node marker leaving (docs/wire-format.md). Releases wait for
   * that write (at most LEAVING_MARK_TIMEOUT_MS), so the other nodes see this node leave
   * before they see its tasks come free: then they neither defer to it nor wait out the claim
   * order that ranks it first.
   */
  leaving(): void {
    const lease = this.lease;
    if (this.leavingMarked || this.state !== "active" || !lease) return;
    this.leavingMarked = markNode(this.etcd, this.keys, this.node, lease.id, "leaving", LEAVING_MARK_TIMEOUT_MS).then(
      (marked) => {
        if (!marked) this.log.debug("node marker not on this lease any more; leaving without marking it");
      },
      (err) => this.log.debug(`could not mark the node leaving: ${errorLine(err)}`),
    );
  }

  /**
   * Revoke the lease while leaving, once no claim is left: releases still queued are dropped
   * (the revoke deletes their owner keys). A revoke that fails leaves them to the lease's
   * expiry, as after a crash; close() tries the revoke again.
   */
  private handOffByRevoke(): Promise<void> {
    this.handoff ??= (async () => {
      const lease = this.lease;
      if (!lease) return;
      const dropped = this.ops.dropQueuedReleases();
      try {
        await lease.revoke(this.config.requestTimeout);
        this.log.debug(`handed off by revoking lease ${lease.id} (${dropped} queued releases covered)`);
      } catch (err) {
        this.log.warn(
          `could not revoke lease ${lease.id} to hand off (${errorLine(err)}); its tasks come free when it expires, within ${lease.ttlSeconds} s`,
        );
      }
    })();
    return this.handoff;
  }

  /** Stop watching, revoke the lease (bounded), close the connection if we opened it. Never hangs. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.state === "closed") return;
      this.state = "closing";
      this.endDoubt();
      await this.teardown();
      this.state = "closed";
    })();
    return this.closing;
  }

  private async teardown(): Promise<void> {
    this.tasksMirror?.close();
    this.view.close();
    this.nodesMirror?.close();
    const lease = this.lease;
    if (lease) {
      try {
        await lease.revoke(this.config.requestTimeout);
      } catch (err) {
        this.log.warn(
          `could not revoke lease ${lease.id} (it expires within ${lease.ttlSeconds} s): ${errorLine(err)}`,
        );
      }
    }
    this.view.claims.clear();
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
    const lease = await registerNode(this.etcd, this.keys, this.node, this.config, this.log);
    this.events.emit("registered", { leaseId: lease.id, ttlSeconds: lease.ttlSeconds });
    return lease;
  }

  private startLease(lease: NodeLease): void {
    lease.on("renewed", ({ latencyMs, deadline }) => this.events.emit("keepalive", { latencyMs, deadline }));
    lease.on("loopLag", (payload) => this.events.emit("loopLag", payload));
    lease.on("doubt", ({ reason, suspendAt }) => this.onLeaseDoubt(lease, reason, suspendAt));
    lease.on("reassured", ({ doubtMs }) => {
      if (lease !== this.lease) return;
      this.log.info(`lease ${lease.id} confirmed again after ${Math.round(doubtMs)} ms in doubt; claiming again`);
      this.events.emit("reassured", { leaseId: lease.id, doubtMs });
      this.endDoubt();
    });
    lease.on("trouble", ({ reason, deadlineMonotonic }) => this.onLeaseTrouble(lease, reason, deadlineMonotonic));
    lease.start();
  }

  // ---------------------------------------------------------------------------------------
  // Lease in doubt: new claims wait

  private onLeaseDoubt(lease: NodeLease, reason: string, suspendAt: number): void {
    if (lease !== this.lease || this.doubtEnded) return;
    let resolve = (): void => {};
    const promise = new Promise<void>((r) => (resolve = r));
    this.doubtEnded = { promise, resolve };
    this.log.warn(
      `lease ${lease.id} in doubt (${reason}): no new claims until a keepalive is confirmed; ` +
        `handlers run on, and stop if none is by ${new Date(suspendAt).toISOString()}`,
    );
    this.events.emit("doubt", { reason, leaseId: lease.id, suspendAt });
  }

  private endDoubt(): void {
    const doubt = this.doubtEnded;
    this.doubtEnded = undefined;
    doubt?.resolve();
  }

  // ---------------------------------------------------------------------------------------
  // Lease trouble: suspend, revoke, rejoin

  /** `deadlineMono`: the claim deadline when trouble began, performance.now() ms. */
  private onLeaseTrouble(lease: NodeLease, reason: string, deadlineMono: number): void {
    const deadline = toEpoch(deadlineMono);
    if (lease === this.lease && this.state === "starting") {
      this.earlyTrouble = { reason, deadline, deadlineMonotonic: deadlineMono }; // handled as soon as init makes the node active
      return;
    }
    if (lease !== this.lease || this.state !== "active") return;
    this.state = "suspended";
    this.endDoubt(); // claims waiting on it give up: the node is not active any more
    this.suspendedDeadline = deadlineMono;
    this.suspensions++;
    this.log.warn(
      `lease ${lease.id} in doubt (${reason}): stopping every task by ${new Date(deadline).toISOString()}, then rejoining with a new lease`,
    );
    this.events.emit("suspended", { reason, deadline, leaseId: lease.id });
    void this.rejoin(lease, deadlineMono).catch((err) => this.log.error(`rejoin failed: ${describeError(err)}`));
  }

  private async rejoin(old: NodeLease, deadlineMono: number): Promise<void> {
    let stopped: Promise<void>;
    try {
      stopped = Promise.resolve(this.ctx?.suspend(toEpoch(deadlineMono)));
    } catch (err) {
      this.log.error(`consumer suspend failed: ${describeError(err)}`);
      stopped = Promise.resolve();
    }
    // Wait for the handlers to stop, but not forever: after the deadline we rejoin anyway.
    await settleWithin(
      stopped.catch((err) => this.log.error(`consumer suspend failed: ${describeError(err)}`)),
      Math.max(0, deadlineMono - performance.now()) + 1000,
    );

    // Every claim was on the old lease. Forget them first so that the owner deletes the revoke
    // causes are not reported as lost claims; a handler that returns later releases nothing.
    this.view.claims.clear();
    // Revoke the old lease: whatever handler did not stop loses its claim now, deliberately.
    for (let attempt = 0; !this.isClosing(); attempt++) {
      try {
        await old.revoke(this.config.requestTimeout);
        break;
      } catch (err) {
        this.log[attempt === 0 ? "warn" : "debug"](
          `cannot revoke lease ${old.id} yet (etcd unreachable?): ${errorLine(err)}`,
        );
        await sleep(retryDelay(attempt));
      }
    }

    let lease: NodeLease | undefined;
    for (let attempt = 0; !this.isClosing() && !lease; attempt++) {
      try {
        lease = await this.register();
      } catch (err) {
        if (err instanceof NodeNameTakenError) this.log.error(`cannot rejoin: ${err.message}; retrying`);
        else this.log[attempt === 0 ? "warn" : "debug"](`cannot rejoin yet: ${errorLine(err)}`);
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
    this.view.reannounce();
    // The table is current already: no listing to wait for before the others may count us.
    void this.markReady(lease);
  }

  // ---------------------------------------------------------------------------------------
  // Claims

  claimDeadline(): number {
    if (this.isClosing()) return 0;
    return toEpoch(this.claimDeadlineMonotonic());
  }

  claimDeadlineMonotonic(): number {
    if (this.state === "suspended") return this.suspendedDeadline;
    if (this.isClosing()) return -Infinity;
    return this.lease ? this.lease.claimDeadlineMonotonic() : Infinity;
  }

  /** The lease's safety margin: a stall longer than this may have let the lease expire. */
  get stallMargin(): number {
    return (this.lease?.timing ?? leaseTiming(this.config.leaseTtl)).marginMs;
  }

  async checkpoint(task: Task, token: number, json: string): Promise<void> {
    if (this.view.claims.get(task.id) !== token) throw new ClaimLostError(task.id, token, "checkpoint");
    await this.ops.checkpoint(task.id, token, json);
  }

  async claim(task: Task): Promise<Claim | undefined> {
    const lease = this.lease;
    const id = task.id;
    const view = this.view;
    if (this.state !== "active" || !lease || view.isHeld(id)) return undefined;
    // Already claimed as far as the watch has seen: save etcd the doomed transaction. (A stale
    // view only delays this node: the owner's delete event announces the task again.)
    if (view.table.get(id)?.owner) return undefined;
    // Lease in doubt: a claim now could outlive what the node can vouch for, and adds to the
    // load that is probably why etcd is slow. Wait until the doubt ends either way.
    while (this.doubtEnded) {
      this.claimsWaiting++;
      await this.doubtEnded.promise.finally(() => this.claimsWaiting--);
      if (lease !== this.lease || this.state !== "active" || view.isHeld(id) || view.table.get(id)?.owner)
        return undefined;
    }
    view.claiming.add(id);
    let win: ClaimWin | undefined;
    try {
      win = await this.ops.claim(id, lease);
    } finally {
      view.claiming.delete(id);
    }
    if (win === undefined) return undefined;
    const { token } = win;
    if (lease !== this.lease || this.state !== "active") return undefined; // the old lease is being revoked
    if (view.endedAlready(id, token)) return undefined; // the watch saw it deleted or replaced already
    view.claims.set(id, token);
    const checkpoint = win.checkpoint === UNKNOWN_CHECKPOINT ? await this.readCheckpoint(id) : win.checkpoint;
    // The claim may have ended while we looked (lease trouble, owner key deleted): then it is
    // reported lost to no one, so say it was not won.
    if (view.claims.get(id) !== token) return undefined;
    return checkpoint === undefined ? { token } : { token, checkpoint };
  }

  /** The checkpoint of a claim won without reading it (a retried claim transaction). */
  private async readCheckpoint(id: string): Promise<string | undefined> {
    try {
      return await this.ops.readCheckpoint(id);
    } catch (err) {
      this.log.warn(`task ${id}: could not read its checkpoint (${errorLine(err)}); it starts without one`);
      return undefined;
    }
  }

  async release(task: Task): Promise<void> {
    const token = this.view.claims.get(task.id);
    if (token === undefined) {
      this.log.debug(`release of ${task.id}: no claim held (lost, or ended with an old lease)`);
      return;
    }
    this.view.claims.delete(task.id);
    if (this.isClosing()) return; // the lease revoke ends the claim
    if (this.leavingMarked) {
      await this.leavingMarked;
      // The last claim of a node that is leaving: end the lease instead, which deletes every
      // owner key still queued for release in one request (the handoff of a node holding
      // thousands of tasks would otherwise be a hundred fenced transactions).
      if (this.view.claims.size === 0 && this.view.claiming.size === 0) return this.handOffByRevoke();
    }
    await this.ops.release(task.id, token);
  }

  async done(task: Task): Promise<void> {
    const token = this.view.claims.get(task.id);
    this.view.claims.delete(task.id);
    if (this.state === "closed") {
      this.log.warn(`task ${task.id} finished after close; it was not deleted and will run again`);
      return;
    }
    await this.ops.done(task.id, token);
  }

  // ---------------------------------------------------------------------------------------
  // nodes/ mirror

  private onNodesSnapshot(kvs: MirrorKv[]): void {
    const nodes: [string, boolean][] = [];
    for (const kv of kvs) {
      const parsed = this.keys.parseNodeKey(kv.key);
      if (parsed?.part === "marker" && onLease(kv)) nodes.push([parsed.node, markerSaysStandby(kv.value)]);
    }
    this.cluster.setNodes(nodes);
    this.inbox.snapshot(kvs);
  }

  private onNodesEvents(events: MirrorEvent[]): void {
    for (const ev of events) {
      const parsed = this.keys.parseNodeKey(ev.kv.key);
      if (parsed?.part !== "marker") continue;
      if (ev.type === "put")
        onLease(ev.kv)
          ? this.cluster.addNode(parsed.node, markerSaysStandby(ev.kv.value))
          : this.cluster.removeNode(parsed.node);
      else {
        this.cluster.removeNode(parsed.node);
        if (parsed.node === this.node && this.state === "active" && !this.handoff) void this.reclaimName();
      }
    }
    this.inbox.events(events);
  }

  /** Our marker vanished while our lease lives (deleted by hand): put it back so the name stays taken. */
  private async reclaimName(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    try {
      const restored = await restoreNodeMarker(this.etcd, this.keys, this.node, lease.id, this.config.requestTimeout);
      if (restored) this.log.warn(`node marker ${this.keys.node(this.node)} was deleted; registered again`);
    } catch (err) {
      // A lease that is gone makes this fail; the keepalive reports that and we rejoin.
      this.log.debug(`could not re-register the node marker: ${errorLine(err)}`);
    }
  }

  private onResync(prefix: string, reason: string): void {
    this.resyncs++;
    this.log.info(`listing ${prefix} again: ${reason}`);
    this.events.emit("resync", { prefix, reason });
  }
}
