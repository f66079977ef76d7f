/**
 * The cluster as this node's watches see it: live nodes (registration markers under nodes/)
 * and how many tasks each owns (owner keys under tasks/). Nothing here is polled; both halves
 * are kept current by the coordinator's watches, so balancers may ask as often as they like.
 */
import type { ClusterState } from "../../types.ts";
import type { TaskTable } from "./task-table.ts";

export class EtcdClusterView implements ClusterState {
  private nodes = new Set<string>();
  private readonly listeners = new Set<() => void>();
  /** liveNodes() is asked for on every claim decision: kept until the node set changes. */
  private sorted: string[] | undefined;

  constructor(
    private readonly self: string,
    private readonly table: () => TaskTable,
  ) {}

  /** Replace the live node set (from a listing of nodes/). */
  setNodes(names: Iterable<string>): void {
    const next = new Set(names);
    const same = next.size === this.nodes.size && [...next].every((n) => this.nodes.has(n));
    this.nodes = next;
    this.sorted = undefined;
    if (!same) this.changed();
  }

  addNode(name: string): void {
    if (this.nodes.has(name)) return;
    this.nodes.add(name);
    this.sorted = undefined;
    this.changed();
  }

  removeNode(name: string): void {
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

  /** Live node names, sorted. This node counts as live while it runs. */
  liveNodes(): string[] {
    return [...this.liveNodesShared()];
  }

  /** The same, shared (callers must not change it). */
  private liveNodesShared(): readonly string[] {
    this.sorted ??= [...new Set([...this.nodes, this.self])].sort();
    return this.sorted;
  }

  nodeTaskCounts(): ReadonlyMap<string, number> {
    const table = this.table();
    const counts = new Map<string, number>();
    for (const node of this.liveNodesShared()) counts.set(node, table.ownerCount(node));
    return counts;
  }

  unclaimedCount(): number {
    return this.table().unclaimedCount();
  }
}
