/**
 * The node's one etcd lease: grant, keepalive, and the claim deadline.
 *
 * Every owner key of the node hangs on this lease, so the node may only vouch for its claims
 * while renewals are confirmed. A renewal is dated by when its request was SENT (etcd renewed
 * it no earlier than that), so `lastRenewal + TTL` is a lower bound of when etcd will expire
 * the lease. The claim deadline keeps a safety margin below that:
 *
 *   deadline = lastRenewal + TTL − margin,   margin = max(1 s, TTL/5)
 *
 * All of it is kept on the monotonic clock (performance.now()): a wall-clock step (NTP, a VM
 * resumed with a new time) must neither extend nor shorten a claim. Epoch values are derived
 * at the moment they are read, for display.
 *
 * Keepalives go out every (TTL − margin)/4. When none has been confirmed for (TTL − margin)/2,
 * the lease is "in doubt": the node stops making new claims but its handlers run on, since the
 * deadline is still ahead; a confirmation ends the doubt. When still none is confirmed by
 * deadline − stop budget (stop budget = max(margin, (TTL − margin)/4)), or the event loop
 * stalled for longer than the margin, the lease is "in trouble": the coordinator suspends
 * (handlers must stop by the deadline) and later rejoins with a new lease. The doubt phase is
 * what keeps a few slow seconds of an overloaded etcd from stopping every task of every node,
 * and the revokes and re-claims that follow from making it slower still.
 * We keep alive ourselves instead of using etcd3's Lease class because it dates renewals by
 * when the answer arrived and only reports loss after 2 × TTL.
 */
import { errorLine } from "../../errors.ts";
import {
  EtcdLeaseInvalidError,
  type Etcd3,
  type IDuplexStream,
  type ILeaseKeepAliveRequest,
  type ILeaseKeepAliveResponse,
} from "etcd3";
import { Emitter } from "../../events.ts";
import type { Logger } from "../../types.ts";
import { LoopLagMonitor } from "../../internal/loop-lag.ts";
import { withTimeout } from "./timing.ts";

/** Timing derived from the TTL etcd granted. All in ms. */
export interface LeaseTiming {
  readonly ttlMs: number;
  readonly marginMs: number;
  /** TTL − margin: how long after a confirmed renewal the node's claims are vouched for. */
  readonly safeMs: number;
  readonly keepaliveEveryMs: number;
  /** With no confirmed renewal for this long, the lease is in doubt: no new claims. */
  readonly overdueAfterMs: number;
  /** With no confirmed renewal for this long, the lease is in trouble: stop every handler. */
  readonly suspendAfterMs: number;
}

export function leaseTiming(ttlSeconds: number): LeaseTiming {
  const ttlMs = ttlSeconds * 1000;
  // At most half the TTL, so a 1 s lease (some etcd configurations grant it) still leaves time.
  const marginMs = Math.min(Math.max(1000, ttlMs / 5), ttlMs / 2);
  const safeMs = ttlMs - marginMs;
  const overdueAfterMs = safeMs / 2;
  // What handlers get to stop in before the deadline (and the margin after it before etcd can expire the lease).
  const stopBudgetMs = Math.max(marginMs, safeMs / 4);
  const suspendAfterMs = Math.max(overdueAfterMs, safeMs - stopBudgetMs);
  return { ttlMs, marginMs, safeMs, keepaliveEveryMs: safeMs / 4, overdueAfterMs, suspendAfterMs };
}

export interface NodeLeaseEvents {
  /** A keepalive was confirmed. */
  renewed: { latencyMs: number; renewedAt: number; deadline: number };
  /** No renewal confirmed for `overdueAfterMs`: make no new claims until one is (or trouble). */
  doubt: { reason: string; suspendAt: number };
  /** A renewal was confirmed while in doubt: claims are vouched for again. */
  reassured: { doubtMs: number };
  /** Emitted once: renewals can no longer be vouched for. */
  trouble: { reason: string; deadline: number; deadlineMonotonic: number };
  /** Largest event-loop lag over the last ~second. */
  loopLag: { maxMs: number };
}

type KeepAliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

export class NodeLease {
  readonly timing: LeaseTiming;
  private readonly events: Emitter<NodeLeaseEvents>;
  /** performance.now() of the last confirmed renewal (by send time). */
  private lastRenewal: number;
  private stream: KeepAliveStream | undefined;
  private pending: number[] = [];
  private opening = false;
  private stopped = false;
  private troubled = false;
  /** performance.now() when the current doubt began, or undefined. */
  private doubtSince: number | undefined;
  private keepaliveTimer: ReturnType<typeof setInterval> | undefined;
  private lagReportTimer: ReturnType<typeof setInterval> | undefined;
  private readonly lag: LoopLagMonitor;
  private lastLatency: number | undefined;

  private constructor(
    private readonly etcd: Etcd3,
    /** etcd's lease id (decimal string). */
    readonly id: string,
    /** TTL etcd granted, in seconds. */
    readonly ttlSeconds: number,
    grantSentAt: number,
    private readonly log: Logger,
  ) {
    this.timing = leaseTiming(ttlSeconds);
    this.lastRenewal = grantSentAt;
    this.events = new Emitter<NodeLeaseEvents>(log);
    this.lag = new LoopLagMonitor({
      interval: Math.max(20, Math.min(100, this.timing.keepaliveEveryMs / 2)),
      onSample: (lagMs) => this.check(lagMs),
    });
  }

  /** Ask etcd for a lease; rejects when etcd does not answer within `timeoutMs`. */
  static async grant(etcd: Etcd3, ttlSeconds: number, timeoutMs: number, log: Logger): Promise<NodeLease> {
    const sentAt = performance.now();
    const res = await withTimeout(
      etcd.leaseClient.leaseGrant({ TTL: ttlSeconds }, { deadline: Date.now() + timeoutMs }),
      timeoutMs,
      `etcd did not grant a lease within ${timeoutMs} ms`,
    );
    if (res.error) throw new Error(`etcd refused the lease: ${res.error}`);
    const granted = Number(res.TTL);
    if (granted !== ttlSeconds)
      log.info(`etcd granted lease ${res.ID} with TTL ${granted} s (asked for ${ttlSeconds} s)`);
    return new NodeLease(etcd, res.ID, granted, sentAt, log);
  }

  on<E extends keyof NodeLeaseEvents>(event: E, listener: (payload: NodeLeaseEvents[E]) => void): () => void {
    return this.events.on(event, listener);
  }

  /** Epoch ms until which claims under this lease are vouched for (for display). */
  claimDeadline(): number {
    return toEpoch(this.claimDeadlineMonotonic());
  }

  /** performance.now() ms until which claims under this lease are vouched for. */
  claimDeadlineMonotonic(): number {
    return this.lastRenewal + this.timing.safeMs;
  }

  /** Epoch ms of the last confirmed renewal (by send time; for display). */
  lastRenewedAt(): number {
    return toEpoch(this.lastRenewal);
  }

  /** Latency of the last confirmed keepalive, ms. */
  lastKeepaliveLatency(): number | undefined {
    return this.lastLatency;
  }

  /** Start keepalives, the overdue watchdog and loop-lag sampling. */
  start(): void {
    if (this.stopped || this.keepaliveTimer) return;
    this.keepaliveTimer = setInterval(() => this.sendKeepalive(), this.timing.keepaliveEveryMs);
    this.lagReportTimer = setInterval(() => this.events.emit("loopLag", { maxMs: this.lag.takeMax() }), 1000);
    this.lag.start();
    this.sendKeepalive();
  }

  /** Stop keepalives and timers; the lease then expires by itself unless revoked. */
  stop(): void {
    this.stopped = true;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    if (this.lagReportTimer) clearInterval(this.lagReportTimer);
    this.keepaliveTimer = undefined;
    this.lagReportTimer = undefined;
    this.lag.stop();
    this.dropStream();
  }

  /**
   * Stop and revoke: etcd deletes every key on the lease at once. Resolves when etcd confirmed
   * (or said the lease is already gone); rejects on a network error or after `timeoutMs`.
   */
  async revoke(timeoutMs: number): Promise<void> {
    this.stop();
    try {
      await withTimeout(
        this.etcd.leaseClient.leaseRevoke({ ID: this.id }, { deadline: Date.now() + timeoutMs }),
        timeoutMs,
        `etcd did not revoke lease ${this.id} within ${timeoutMs} ms`,
      );
    } catch (err) {
      if (err instanceof EtcdLeaseInvalidError) return; // expired or revoked already: same outcome
      throw err;
    }
  }

  private sendKeepalive(): void {
    if (this.stopped) return;
    const stream = this.stream;
    if (!stream) {
      void this.openStream();
      return;
    }
    // Answers stopped coming on this stream (etcd paused, connection half-dead): start afresh.
    if (this.pending.length >= 4) {
      this.log.debug(`lease ${this.id}: ${this.pending.length} keepalives unanswered, reopening the stream`);
      this.dropStream();
      void this.openStream();
      return;
    }
    try {
      this.pending.push(performance.now());
      stream.write({ ID: this.id });
    } catch (err) {
      this.log.debug(`lease ${this.id}: keepalive write failed: ${errorLine(err)}`);
      this.dropStream();
    }
  }

  private async openStream(): Promise<void> {
    if (this.stopped || this.opening || this.stream) return;
    this.opening = true;
    try {
      const stream = await this.etcd.leaseClient.leaseKeepAlive();
      if (this.stopped) {
        closeStream(stream);
        return;
      }
      const pending: number[] = [];
      this.stream = stream;
      this.pending = pending;
      stream.on("data", (res) => this.onAnswer(stream, pending, res));
      stream.on("error", (err) => this.onStreamClosed(stream, err));
      stream.on("end", () => this.onStreamClosed(stream));
      this.sendKeepalive();
    } catch (err) {
      this.log.debug(`lease ${this.id}: cannot open keepalive stream: ${errorLine(err)}`);
    } finally {
      this.opening = false;
    }
  }

  private onAnswer(stream: KeepAliveStream, pending: number[], res: ILeaseKeepAliveResponse): void {
    if (stream !== this.stream || this.stopped) return;
    const sentAt = pending.shift();
    if (res.TTL === "0" || Number(res.TTL) <= 0) {
      this.raiseTrouble(`etcd says lease ${this.id} no longer exists (revoked or expired)`);
      return;
    }
    if (sentAt === undefined) return;
    const now = performance.now();
    if (sentAt > this.lastRenewal) this.lastRenewal = sentAt;
    this.lastLatency = now - sentAt;
    this.events.emit("renewed", {
      latencyMs: this.lastLatency,
      renewedAt: toEpoch(sentAt),
      deadline: this.claimDeadline(),
    });
    if (this.doubtSince !== undefined && !this.troubled && now - this.lastRenewal <= this.timing.overdueAfterMs) {
      const doubtMs = now - this.doubtSince;
      this.doubtSince = undefined;
      this.events.emit("reassured", { doubtMs });
    }
  }

  private onStreamClosed(stream: KeepAliveStream, err?: Error): void {
    if (stream !== this.stream) return;
    if (err instanceof EtcdLeaseInvalidError) this.raiseTrouble(`etcd says lease ${this.id} is invalid`);
    else this.log.debug(`lease ${this.id}: keepalive stream closed${err ? `: ${err.message}` : ""}`);
    this.dropStream();
  }

  private dropStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    this.pending = [];
    if (stream) closeStream(stream);
  }

  /** Runs with every loop-lag sample: the stall and overdue watchdog. */
  private check(lagMs: number): void {
    if (this.stopped || this.troubled) return;
    if (lagMs > this.timing.marginMs) {
      this.raiseTrouble(`event loop stalled for ${Math.round(lagMs)} ms (safety margin ${this.timing.marginMs} ms)`);
      return;
    }
    const now = performance.now();
    const age = Math.round(now - this.lastRenewal);
    if (age > this.timing.suspendAfterMs) {
      this.raiseTrouble(`no keepalive confirmed for ${age} ms (lease TTL ${this.ttlSeconds} s)`);
    } else if (age > this.timing.overdueAfterMs && this.doubtSince === undefined) {
      this.doubtSince = now;
      this.events.emit("doubt", {
        reason: `no keepalive confirmed for ${age} ms (lease TTL ${this.ttlSeconds} s)`,
        suspendAt: toEpoch(this.lastRenewal + this.timing.suspendAfterMs),
      });
    }
  }

  private raiseTrouble(reason: string): void {
    if (this.troubled || this.stopped) return;
    this.troubled = true;
    this.events.emit("trouble", {
      reason,
      deadline: this.claimDeadline(),
      deadlineMonotonic: this.claimDeadlineMonotonic(),
    });
  }
}

/**
 * A monotonic time as epoch ms (display only): counted from the process's time origin, so the
 * same instant always maps to the same value, whatever the wall clock does meanwhile.
 */
export function toEpoch(monotonic: number): number {
  return Number.isFinite(monotonic) ? Math.round(performance.timeOrigin + monotonic) : monotonic;
}

/**
 * Close a grpc stream without etcd3 treating it as a host failure: its error handler marks the
 * host failed (which closes EVERY stream on it) only while the stream is still writable, so
 * half-close first, then cancel.
 */
export function closeStream(stream: { end(): void; cancel(): void }): void {
  try {
    stream.end();
  } catch {
    // already ended
  }
  try {
    stream.cancel();
  } catch {
    // already closed
  }
}
