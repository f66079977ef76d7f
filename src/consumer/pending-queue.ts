/**
 * The consumer's pending set: tasks announced as claimable and not yet considered.
 * Deduplicated by id (a repeat announcement refreshes the task but keeps its place), drained by
 * rank (lowest first; the coordinator's rendezvous rank, 0 by default), and within a rank in
 * announcement order. Per rank an array of ids plus one map keeps take() O(1) amortised even
 * with tens of thousands of entries, where repeatedly taking the head of a Map would rescan
 * deleted slots.
 */
import type { Task } from "../types.ts";

interface Lane {
  order: string[];
  head: number;
}

interface Entry {
  task: Task;
  readonly rank: number;
}

/** Ranks above this share the last lane (a rank is a small integer: a node count). */
const MAX_RANK = 1023;

export class PendingQueue {
  private readonly tasks = new Map<string, Entry>();
  private readonly lanes: Lane[] = [];
  /** Lowest lane that may hold a live slot. */
  private low = 0;

  /** Add or refresh a task. */
  put(task: Task, rank = 0): void {
    const existing = this.tasks.get(task.id);
    if (existing) {
      existing.task = task;
      return;
    }
    const r = Number.isInteger(rank) && rank > 0 ? Math.min(rank, MAX_RANK) : 0;
    this.tasks.set(task.id, { task, rank: r });
    const lane = (this.lanes[r] ??= { order: [], head: 0 });
    lane.order.push(task.id);
    if (r < this.low) this.low = r;
    // Churn of put/delete without take leaves dead slots; rebuild before they dominate.
    if (lane.order.length - lane.head > 4 * this.tasks.size + 1024) this.rebuild();
  }

  /** Forget a task (withdrawn by the coordinator). */
  delete(id: string): boolean {
    return this.tasks.delete(id);
  }

  has(id: string): boolean {
    return this.tasks.has(id);
  }

  get size(): number {
    return this.tasks.size;
  }

  /** Remove and return the next pending task: lowest rank first, oldest first within it. */
  take(): Task | undefined {
    for (let r = this.low; r < this.lanes.length; r++) {
      const lane = this.lanes[r];
      if (!lane) continue;
      while (lane.head < lane.order.length) {
        const id = lane.order[lane.head++]!;
        const entry = this.tasks.get(id);
        if (entry === undefined || entry.rank !== r) continue; // deleted, or re-put in another lane
        this.tasks.delete(id);
        compact(lane);
        this.low = r;
        return entry.task;
      }
      lane.order = [];
      lane.head = 0;
    }
    this.low = this.lanes.length;
    return undefined;
  }

  clear(): void {
    this.tasks.clear();
    this.lanes.length = 0;
    this.low = 0;
  }

  private rebuild(): void {
    this.lanes.length = 0;
    this.low = MAX_RANK + 1;
    for (const [id, entry] of this.tasks) {
      (this.lanes[entry.rank] ??= { order: [], head: 0 }).order.push(id);
      if (entry.rank < this.low) this.low = entry.rank;
    }
    if (this.low > MAX_RANK) this.low = 0;
  }
}

function compact(lane: Lane): void {
  if (lane.head > 1024 && lane.head * 2 > lane.order.length) {
    lane.order = lane.order.slice(lane.head);
    lane.head = 0;
  }
}
