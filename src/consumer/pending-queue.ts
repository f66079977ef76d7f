/**
 * The consumer's pending set: tasks announced as claimable and not yet considered.
 * Deduplicated by id (a repeat announcement refreshes the task but keeps its place), drained in
 * announcement order. An array of ids plus a map keeps take() O(1) amortised even with tens of
 * thousands of entries, where repeatedly taking the head of a Map would rescan deleted slots.
 */
import type { Task } from "../types.ts";

export class PendingQueue {
  private readonly tasks = new Map<string, Task>();
  private order: string[] = [];
  private head = 0;

  /** Add or refresh a task. */
  put(task: Task): void {
    if (!this.tasks.has(task.id)) this.order.push(task.id);
    this.tasks.set(task.id, task);
    // Churn of put/delete without take leaves dead slots; rebuild before they dominate.
    if (this.order.length - this.head > 4 * this.tasks.size + 1024) {
      this.order = [...this.tasks.keys()];
      this.head = 0;
    }
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

  /** Remove and return the oldest pending task. */
  take(): Task | undefined {
    while (this.head < this.order.length) {
      const id = this.order[this.head++]!;
      const task = this.tasks.get(id);
      if (task === undefined) continue; // deleted, or re-put later (its newer slot follows)
      this.tasks.delete(id);
      this.compact();
      return task;
    }
    this.order = [];
    this.head = 0;
    return undefined;
  }

  clear(): void {
    this.tasks.clear();
    this.order = [];
    this.head = 0;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }
}
