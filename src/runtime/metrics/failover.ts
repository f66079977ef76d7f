/**
 * Failover estimate for /metrics.
 *
 * A failover is a claim of a task whose previous owner vanished without releasing it (killed,
 * partitioned, lease expired). No single node sees that directly: the consumer's "claimed"
 * event does not say who owned the task before, and asking the coordinator per claim would
 * cost a request per task. So we approximate from the coordinator's live cluster view, which
 * is kept from its watch and free to read:
 *
 * - The view is sampled regularly (and on every claim). When a node disappears from it, the
 *   number of tasks it held at the previous sample becomes an "orphan budget" valid for a
 *   window (default 60 s).
 * - Each claim this node makes while budget remains counts as one failover and uses up one unit.
 *
 * A node that shuts down gracefully releases its tasks before it deregisters; when a sample
 * falls between the two, its count has dropped to zero by the time it vanishes and the
 * hand-off is not counted. Known error sources, all over-counting, none under-counting a real
 * failover seen by a sample: a graceful shutdown that releases and deregisters within one
 * sampling interval (default 250 ms) looks like a crash; claims of brand-new tasks inside the
 * window are counted while budget remains; orphans claimed by other nodes do not use up this
 * node's budget (so each node's counter is bounded by the orphan count and by its own claims,
 * and the cluster-wide sum can exceed the true number). A node that holds tasks for less than
 * one sampling interval before dying is missed.
 */
import type { ClusterState } from "../../types.ts";

export interface FailoverEstimatorOptions {
  /** How long after a node vanished claims may count as failovers (ms, default 60 s). */
  window?: number;
  /** This node's name: it never counts as vanished in its own view. */
  self?: string;
  now?: () => number;
}

export class FailoverEstimator {
  private last = new Map<string, number>();
  private budget: Array<{ remaining: number; expires: number }> = [];
  private readonly window: number;
  private readonly now: () => number;

  constructor(
    private readonly cluster: ClusterState,
    private readonly opts: FailoverEstimatorOptions = {},
  ) {
    this.window = opts.window ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.sample();
  }

  /** Compare the cluster view with the previous sample; vanished nodes' tasks become budget. */
  sample(): void {
    let current: ReadonlyMap<string, number>;
    try {
      current = this.cluster.nodeTaskCounts();
    } catch {
      return; // a coordinator that cannot answer right now: keep the previous sample
    }
    const now = this.now();
    for (const [node, count] of this.last) {
      if (!current.has(node) && node !== this.opts.self && count > 0) {
        this.budget.push({ remaining: count, expires: now + this.window });
      }
    }
    this.last = new Map(current);
  }

  /** A claim by this node happened: true when it counts as a failover. */
  claimed(): boolean {
    this.sample();
    const now = this.now();
    this.budget = this.budget.filter((b) => b.expires > now && b.remaining > 0);
    const entry = this.budget[0];
    if (!entry) return false;
    entry.remaining--;
    return true;
  }
}
