/**
 * FairBalancer: Go Metafora's, with its bugs fixed, plus claim-time fairness and membership-driven
 * rebalancing.
 *
 * Balance (periodic, or on the `balance` command): with `avg` = running tasks per live node
 * (a float; Go divides integers first), release down to ceil(avg × threshold), picking random
 * tasks, never more than this node actually runs (Go loops forever when the cluster's count
 * for this node exceeds its local list, e.g. stale owner keys). After releasing, refuse
 * claims for `releaseHold` ms so the released tasks go to other nodes.
 *
 * Rebalance (after a node joins, leaves or returns, and on each drift check): fair share =
 * (claimed + unclaimed) / live nodes, Go nodes included (they register under nodes/ too). A
 * node that runs more than ceil(share) + allowance hands back down to ceil(share), and only
 * when some node is below its share; a node within the allowance keeps what it has. The band
 * between the two is what stops tasks from ping-ponging: after a rebalance no node is above
 * the trigger, so nothing moves again.
 *
 * Claim time: share = ceil((claimed + unclaimed) / live nodes). A node at or above its share
 * (plus a slack of `claimSlack` × share, rounded down, while no other node is further than
 * that below it: none for shares under 100 at the default) defers a task briefly (jittered `claimDefer`) instead of sleeping in the claim path, so a
 * bulk submit or a release spreads to the least loaded nodes without waiting for a rebalance.
 * It keeps deferring the same task while some live node is still below its share and that node
 * keeps gaining tasks, for at most `claimDeferLimit` ms in all; then it claims it, so no task
 * starves because, say, the nodes below their share are full, shutting down or lack its handler.
 */
import { ConfigError } from "../errors.ts";
import type { Balancer, BalancerContext, ClaimDecision, ClusterState, RebalanceTrigger } from "../types.ts";

export interface FairBalancerOptions {
  /** Release down to ceil(average × threshold). Default 1.2 (Go's). */
  threshold?: number;
  /** Refuse claims for this many ms after a balance released tasks. Default 2000. */
  releaseHold?: number;
  /** Claim-time deferral range in ms, [min, max). Default [50, 250]. */
  claimDefer?: readonly [number, number];
  /**
   * Longest total time one task is deferred while some node is below its share, ms. After
   * that this node claims it anyway. Default 5000.
   */
  claimDeferLimit?: number;
  /**
   * Rebalance hysteresis: a node hands tasks back only when it runs more than ceil(share) +
   * max(1, ceil(share × allowance)). Default 0.05.
   */
  allowance?: number;
  /**
   * Claim-time slack, a fraction of the share: while every other node is within it of its
   * share, a node defers only at or above ceil(share) + floor(share × claimSlack). Near a share
   * of thousands, deferring the last few tasks to nodes
   * a handful below it costs each of them a rank delay or more (seconds, in a handoff of
   * 10,000) for a spread that is even to within 1 % anyway. Default 0.01; 0 defers at the share.
   */
  claimSlack?: number;
  /** Random source in [0, 1), for tests. */
  random?: () => number;
  /** Clock, for tests. */
  now?: () => number;
}

const CLAIM: ClaimDecision = { claim: true };

interface Deferral {
  /** End of the latest deferral (epoch ms). */
  readonly until: number;
  /** Start of the first deferral of this task's current life. */
  readonly since: number;
  /** The least loaded other node's count when last seen rising, and when that was. */
  readonly lowest: number;
  readonly progressAt: number;
}

/**
 * Keep deferring to the nodes below their share only while they make progress: if the least
 * loaded one has not gained a task for this long (it is full, lacks the handler, or is gone
 * and its lease not yet expired), or has lost tasks (it is shutting down), claim.
 */
const STALL_MS = 500;
/**
 * A deferral that ended longer ago than this is forgotten: the consumer re-offers a deferred
 * task as soon as its deferral ends, so a later offer means the task went elsewhere and came
 * back (a new life, with a fresh defer limit).
 */
const DEFERRAL_MEMORY_MS = 1_000;
/** Defaults, exported for the runtime's config and docs. */
export const FAIR_DEFAULTS = {
  threshold: 1.2,
  releaseHold: 2000,
  claimDefer: [50, 250] as const,
  claimDeferLimit: 5000,
  allowance: 0.05,
  claimSlack: 0.01,
};

/** This node's fair share of the cluster's tasks, from the watched view. */
export interface ShareView {
  /** (claimed + unclaimed) / live nodes, a float. */
  readonly share: number;
  /** Tasks this node holds. */
  readonly local: number;
  /** Live nodes, this one included. */
  readonly nodes: number;
  /** The fewest tasks any other live node holds (Infinity when alone). */
  readonly lowestOther: number;
  readonly unclaimed: number;
}

/**
 * The fair share as the cluster view sees it. `local` overrides this node's count (the
 * consumer's own count is fresher than the watch). Owner keys of nodes that are not
 * registered are not counted, as in Go.
 */
export function shareOf(cluster: ClusterState, node: string, local?: number, extraUnclaimed = 0): ShareView {
  const counts = cluster.nodeTaskCounts();
  let others = 0;
  let lowestOther = Infinity;
  for (const [name, n] of counts) {
    if (name === node) continue;
    others += n;
    if (n < lowestOther) lowestOther = n;
  }
  const mine = local ?? counts.get(node) ?? 0;
  const nodes = counts.size + (counts.has(node) ? 0 : 1);
  const unclaimed = Math.max(0, cluster.unclaimedCount()) + extraUnclaimed;
  return { share: (mine + others + unclaimed) / nodes, local: mine, nodes, lowestOther, unclaimed };
}

/** The rebalance allowance in tasks for a share: max(1, ceil(share × fraction)). */
export function allowanceFor(share: number, fraction: number): number {
  return Math.max(1, Math.ceil(share * fraction - EPSILON));
}

/** Floating-point slack so that, e.g., 3 × 1.2 is not ceiled to 4 by a rounding error. */
const EPSILON = 1e-9;

export class FairBalancer implements Balancer {
  readonly threshold: number;
  private readonly releaseHold: number;
  private readonly deferMin: number;
  private readonly deferSpan: number;
  private readonly deferLimit: number;
  readonly allowance: number;
  readonly claimSlack: number;
  private readonly random: () => number;
  private readonly now: () => number;
  private ctx: BalancerContext | undefined;
  /** No claims before this epoch ms (set by balance when it released something). */
  private holdUntil = 0;
  /** Tasks deferred for fairness: id → end of the latest deferral and start of the first. */
  private readonly deferred = new Map<string, Deferral>();
  private pruneAt = 4096;

  constructor(opts: FairBalancerOptions = {}) {
    const threshold = opts.threshold ?? FAIR_DEFAULTS.threshold;
    if (!Number.isFinite(threshold) || threshold <= 0) {
      throw new ConfigError(
        `FairBalancer threshold must be a positive number (e.g. 1.2), got ${String(opts.threshold)}`,
      );
    }
    const hold = opts.releaseHold ?? FAIR_DEFAULTS.releaseHold;
    if (!Number.isFinite(hold) || hold < 0) {
      throw new ConfigError(`FairBalancer releaseHold must be a number of ms >= 0, got ${String(opts.releaseHold)}`);
    }
    const [min, max] = opts.claimDefer ?? FAIR_DEFAULTS.claimDefer;
    if (!Number.isFinite(min) || !Number.isFinite(max) || min < 0 || max < min) {
      throw new ConfigError(
        `FairBalancer claimDefer must be [min, max] ms with 0 <= min <= max, got ${JSON.stringify(opts.claimDefer)}`,
      );
    }
    const limit = opts.claimDeferLimit ?? FAIR_DEFAULTS.claimDeferLimit;
    if (!Number.isFinite(limit) || limit < 0) {
      throw new ConfigError(
        `FairBalancer claimDeferLimit must be a number of ms >= 0, got ${String(opts.claimDeferLimit)}`,
      );
    }
    const allowance = opts.allowance ?? FAIR_DEFAULTS.allowance;
    if (!Number.isFinite(allowance) || allowance < 0 || allowance > 1) {
      throw new ConfigError(
        `FairBalancer allowance must be a fraction from 0 to 1 (e.g. 0.05), got ${String(opts.allowance)}`,
      );
    }
    this.threshold = threshold;
    this.releaseHold = hold;
    this.deferLimit = limit;
    this.allowance = allowance;
    const slack = opts.claimSlack ?? FAIR_DEFAULTS.claimSlack;
    if (!Number.isFinite(slack) || slack < 0 || slack > 1) {
      throw new ConfigError(
        `FairBalancer claimSlack must be a fraction from 0 to 1 (e.g. 0.01), got ${String(opts.claimSlack)}`,
      );
    }
    this.claimSlack = slack;
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

    let earlier = this.deferred.get(task.id);
    if (earlier !== undefined) {
      this.deferred.delete(task.id);
      // A deferral that ended long ago belongs to an earlier life of the task: start afresh.
      if (now - earlier.until >= DEFERRAL_MEMORY_MS) earlier = undefined;
    }

    const local = ctx.taskCount?.() ?? ctx.tasks().length;
    // The task at hand is unclaimed even if the cluster view has not caught up with it yet.
    const view = shareOf(ctx.cluster, ctx.node, local, ctx.cluster.unclaimedCount() > 0 ? 0 : 1);
    const share = Math.ceil(view.share - EPSILON);
    // The slack only while every other node is near its share too: one well below it (a
    // joiner, say) is who the deferral is for.
    const slack = Math.floor(view.share * this.claimSlack + EPSILON);
    if (local < (view.lowestOther >= share - slack ? share + slack : share)) return CLAIM;
    let since = now;
    let lowest = view.lowestOther;
    let progressAt = now;
    if (earlier !== undefined) {
      // Deferred before and back again: keep deferring while a node below its share is taking
      // tasks, but never longer than the limit in all (that node may be full, lack a handler,
      // or be shutting down).
      if (!(view.lowestOther < share) || now - earlier.since >= this.deferLimit) return CLAIM;
      since = earlier.since;
      if (view.lowestOther < earlier.lowest) return CLAIM;
      if (view.lowestOther === earlier.lowest) {
        if (now - earlier.progressAt >= STALL_MS) return CLAIM;
        lowest = earlier.lowest;
        progressAt = earlier.progressAt;
      }
    }

    const until = now + this.deferMin + this.random() * this.deferSpan;
    this.rememberDeferral(task.id, { until, since, lowest, progressAt }, now);
    return { claim: false, until };
  }

  /**
   * Tasks to hand back after a membership change or on a drift check: down to ceil(share),
   * only when this node runs more than ceil(share) + allowance (checked when a rebalance
   * starts; its later paced steps carry on down to ceil(share)) and some node is below its
   * share. Random picks among tasks not already stopping.
   */
  rebalance(_trigger?: RebalanceTrigger, pass?: { readonly step: number }): string[] {
    const ctx = this.ctx;
    if (!ctx) return [];
    const tasks = ctx.tasks();
    const candidates = tasks.filter((t) => t.stopped === undefined).map((t) => t.task.id);
    // Tasks already stopping still count in the total (their owner keys are still there), but
    // they are leaving: only the others are compared with the share.
    const view = shareOf(ctx.cluster, ctx.node, tasks.length);
    if (view.nodes < 2) return [];
    const target = Math.ceil(view.share - EPSILON);
    const started = (pass?.step ?? 0) > 0;
    if (candidates.length <= target + (started ? 0 : allowanceFor(view.share, this.allowance))) return [];
    // Someone must be able to take them: a node below its share (by more than what is already
    // unclaimed). Otherwise the tasks would only come back here.
    if (!(view.lowestOther < Math.floor(view.share + EPSILON))) return [];
    return this.pick(candidates, candidates.length - target);
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
    const release = this.pick(candidates, excess);
    if (release.length > 0) this.holdUntil = this.now() + this.releaseHold;
    return release;
  }

  /** `count` distinct random ids from `candidates` (at most all of them). Shuffles in place. */
  private pick(candidates: string[], count: number): string[] {
    const n = Math.min(count, candidates.length);
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(this.random() * (candidates.length - i));
      const tmp = candidates[i]!;
      candidates[i] = candidates[j]!;
      candidates[j] = tmp;
    }
    return candidates.slice(0, n);
  }

  private rememberDeferral(id: string, deferral: Deferral, now: number): void {
    this.deferred.set(id, deferral);
    // Forget deferrals of tasks that were claimed elsewhere and never came back.
    // The threshold doubles with what survives, so pruning stays amortised O(1) per call.
    if (this.deferred.size > this.pruneAt) {
      for (const [key, d] of this.deferred) if (now - d.until > DEFERRAL_MEMORY_MS) this.deferred.delete(key);
      this.pruneAt = Math.max(4096, 2 * this.deferred.size);
    }
  }
}
