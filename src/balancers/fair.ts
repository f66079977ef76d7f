/**
 * FairBalancer: Go Metafora's, with its bugs fixed, plus claim-time fairness.
 *
 * Balance (periodic, or on the `balance` command): with `avg` = running tasks per live node
 * (a float; Go divides integers first), release down to ceil(avg × threshold), picking random
 * tasks, never more than this node actually runs (Go loops forever when the cluster's count
 * for this node exceeds its local list, e.g. stale owner keys). After releasing, refuse
 * claims for `releaseHold` ms so the released tasks go to other nodes.
 *
 * Claim time: fair share = ceil((claimed + unclaimed) / live nodes). A node at or above its
 * share defers a task briefly (jittered `claimDefer`) instead of sleeping in the claim path,
 * so a bulk submit spreads evenly without waiting for a rebalance. A task it deferred that is
 * still unclaimed when the deferral ends is claimed: no task starves because, say, the other
 * nodes are full or lack its handler.
 */
import { ConfigError } from "../errors.ts";
import type { Balancer, BalancerContext, ClaimDecision } from "../types.ts";

export interface FairBalancerOptions {
  /** Release down to ceil(average × threshold). Default 1.2 (Go's). */
  threshold?: number;
  /** Refuse claims for this many ms after a balance released tasks. Default 2000. */
  releaseHold?: number;
  /** Claim-time deferral range in ms, [min, max). Default [50, 250]. */
  claimDefer?: readonly [number, number];
  /** Random source in [0, 1), for tests. */
  random?: () => number;
  /** Clock, for tests. */
  now?: () => number;
}

const CLAIM: ClaimDecision = { claim: true };
/** A deferral older than this is forgotten (the task went elsewhere and came back later). */
const DEFERRAL_MEMORY_MS = 10_000;
/** Floating-point slack so that, e.g., 3 × 1.2 is not ceiled to 4 by a rounding error. */
const EPSILON = 1e-9;

export class FairBalancer implements Balancer {
  readonly threshold: number;
  private readonly releaseHold: number;
  private readonly deferMin: number;
  private readonly deferSpan: number;
  private readonly random: () => number;
  private readonly now: () => number;
  private ctx: BalancerContext | undefined;
  /** No claims before this epoch ms (set by balance when it released something). */
  private holdUntil = 0;
  /** Tasks deferred for fairness: id → end of the deferral. */
  private readonly deferred = new Map<string, number>();
  private pruneAt = 4096;

  constructor(opts: FairBalancerOptions = {}) {
    const threshold = opts.threshold ?? 1.2;
    if (!Number.isFinite(threshold) || threshold <= 0) {
      throw new ConfigError(`FairBalancer threshold must be a positive number (e.g. 1.2), got ${String(opts.threshold)}`);
    }
    const hold = opts.releaseHold ?? 2000;
    if (!Number.isFinite(hold) || hold < 0) {
      throw new ConfigError(`FairBalancer releaseHold must be a number of ms >= 0, got ${String(opts.releaseHold)}`);
    }
    const [min, max] = opts.claimDefer ?? [50, 250];
    if (!Number.isFinite(min) || !Number.isFinite(max) || min < 0 || max < min) {
      throw new ConfigError(`FairBalancer claimDefer must be [min, max] ms with 0 <= min <= max, got ${JSON.stringify(opts.claimDefer)}`);
    }
    this.threshold = threshold;
    this.releaseHold = hold;
    this.deferMin = min;
    this.deferSpan = max - min;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
  }

  init(ctx: BalancerContext): void {
    this.ctx = ctx;
  }

  canClaim(task: { readonly id: string }): ClaimDecision {
    const now = this.now();
    if (now < this.holdUntil) return { claim: false, until: this.holdUntil };
    const ctx = this.ctx;
    if (!ctx) return CLAIM;

    const deferredUntil = this.deferred.get(task.id);
    if (deferredUntil !== undefined) {
      this.deferred.delete(task.id);
      // Deferred once already and still unclaimed: take it, so it cannot starve.
      if (now >= deferredUntil && now - deferredUntil < DEFERRAL_MEMORY_MS) return CLAIM;
    }

    const local = ctx.taskCount?.() ?? ctx.tasks().length;
    const counts = ctx.cluster.nodeTaskCounts();
    let others = 0;
    for (const [node, n] of counts) if (node !== ctx.node) others += n;
    const liveNodes = counts.size + (counts.has(ctx.node) ? 0 : 1);
    // The task at hand is unclaimed even if the cluster view has not caught up with it yet.
    const unclaimed = Math.max(1, ctx.cluster.unclaimedCount());
    const share = Math.ceil((local + others + unclaimed) / liveNodes);
    if (local < share) return CLAIM;

    const until = now + this.deferMin + this.random() * this.deferSpan;
    this.rememberDeferral(task.id, until, now);
    return { claim: false, until };
  }

  balance(): string[] {
    const ctx = this.ctx;
    this.holdUntil = 0;
    if (!ctx) return [];
    const tasks = ctx.tasks();
    if (tasks.length < 2) return [];
    const counts = ctx.cluster.nodeTaskCounts();
    if (counts.size === 0) return [];
    let total = 0;
    for (const n of counts.values()) total += n;
    const desired = Math.ceil((total / counts.size) * this.threshold - EPSILON);
    const current = counts.get(ctx.node) ?? tasks.length;
    const excess = current - desired;
    if (excess < 1) return [];

    // Never more than we run (Go's infinite loop); tasks already stopping are leaving anyway.
    const candidates = tasks.filter((t) => t.stopped === undefined).map((t) => t.task.id);
    const n = Math.min(excess, candidates.length);
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(this.random() * (candidates.length - i));
      const tmp = candidates[i]!;
      candidates[i] = candidates[j]!;
      candidates[j] = tmp;
    }
    const release = candidates.slice(0, n);
    if (release.length > 0) this.holdUntil = this.now() + this.releaseHold;
    return release;
  }

  private rememberDeferral(id: string, until: number, now: number): void {
    this.deferred.set(id, until);
    // Forget deferrals of tasks that were claimed elsewhere and never came back.
    // The threshold doubles with what survives, so pruning stays amortised O(1) per call.
    if (this.deferred.size > this.pruneAt) {
      for (const [key, end] of this.deferred) if (now - end > DEFERRAL_MEMORY_MS) this.deferred.delete(key);
      this.pruneAt = Math.max(4096, 2 * this.deferred.size);
    }
  }
}
