/**
 * The cluster as this node's watches see it: live nodes (registration markers under nodes/)
 * and how many tasks each owns (owner keys under tasks/). Nothing here is polled; both halves
 * are kept current by the coordinator's watches, so balancers may ask as often as they like.
 *
 * A node whose marker says it stands by is not counted. Leaving (a graceful shutdown has
 * begun): its tasks are about to come free, and counting it would make the others defer to it,
 * or leave to it the tasks it ranks first for, while it only hands tasks back. Joining (still
 * listing the tasks): the others would rebalance towards a node that cannot claim yet, and
 * the load of that churn is what slows its listing. Its marker keeps its name taken all the
 * same.
 */
import type { ClusterState } from "../../types.ts";
import type { TaskTable } from "./task-table.ts";

export class EtcdClusterView implements ClusterState {
  private nodes = new Set<string>();
  private standby = new Set<string>();
  private readonly listeners = new Set<() => void>();
  /** liveNodes() is asked for on every claim decision: kept until the node set changes. */
  private sorted: string[] | undefined;

  constructor(
    private readonly self: string,
    private readonly table: () => TaskTable,
  ) {}

  /** Replace the live node set (from a listing of nodes/): name → standing by (joining or leaving). */
  setNodes(entries: Iterable<readonly [name: string, standby: boolean]>): void {
    const nodes = new Set<string>();
    const standby = new Set<string>();
    for (const [name, standing] of entries) {
      nodes.add(name);
      if (standing) standby.add(name);
    }
    const same = (a: Set<string>, b: Set<string>): boolean => a.size === b.size && [...a].every((n) => b.has(n));
    const unchanged = same(nodes, this.nodes) && same(standby, this.standby);
    this.nodes = nodes;
    this.standby = standby;
    this.sorted = undefined;
    if (!unchanged) this.changed();
  }

  /** A marker was put: a node registered, became ready, or (standby) is joining or leaving. */
  addNode(name: string, standby = false): void {
    if (this.nodes.has(name) && this.standby.has(name) === standby) return;
    this.nodes.add(name);
    if (standby) this.standby.add(name);
    else this.standby.delete(name);
    this.sorted = undefined;
    this.changed();
  }

  removeNode(name: string): void {
    this.standby.delete(name);
    if (!this.nodes.delete(name)) return;
    this.sorted = undefined;
    this.changed();
  }

  /** Called after the live node set changed (a marker under nodes/ appeared or vanished). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch {
        // a listener's failure is its own; the watch must carry on
      }
    }
  }

  /** Registered nodes standing by (joining or leaving), sorted. */
  standingBy(): string[] {
    return [...this.standby].sort();
  }

  /** Live node names, sorted, those standing by left out. This node counts as live while it runs. */
  liveNodes(): string[] {
    return [...this.liveNodesShared()];
  }

  /** The same, shared (callers must not change it). */
  private liveNodesShared(): readonly string[] {
    this.sorted ??= [...new Set([...this.nodes, this.self])]
      .filter((n) => n === this.self || !this.standby.has(n))
      .sort();
    return this.sorted;
  }

  nodeTaskCounts(): ReadonlyMap<string, number> {
    const table = this.table();
    const counts = new Map<string, number>();
    for (const node of this.liveNodesShared()) counts.set(node, table.ownerCount(node));
    return counts;
  }

  /**
   * Tasks nobody owns, plus those of nodes standing by: a leaving node's are about to come
   * free, and counted as owned by no one the others would think themselves at their share
   * already and defer the very tasks the leaver hands back.
   */
  unclaimedCount(): number {
    const table = this.table();
    let count = table.unclaimedCount();
    for (const node of this.standby) if (node !== this.self) count += table.ownerCount(node);
    return count;
  }
}
