/**
 * The ignore (delay) list, as in Go Metafora: tasks this node will not consider until a deadline.
 *
 * A min-heap ordered by deadline and ONE timer armed for the earliest entry. On expiry the
 * task is handed back through `onExpire` (the consumer puts it in its pending set, as if the
 * coordinator had announced it again). Everything runs on the event loop and nothing waits
 * for anything else, so the deadlock of Go's monitor goroutine cannot occur.
 */
import { MAX_TIMER_DELAY } from "../internal/timers.ts";
import type { Task } from "../types.ts";

interface Entry {
  readonly task: Task;
  readonly until: number;
  /** Forget it when the coordinator withdraws the task (see forgetWithdrawn). */
  readonly dropOnWithdraw: boolean;
}

export class IgnoreList {
  /** Current entry per id; a heap entry that is no longer current is stale and skipped. */
  private readonly current = new Map<string, Entry>();
  private readonly heap: Entry[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Infinity;
  private closed = false;

  constructor(
    private readonly onExpire: (task: Task) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Ignore `task` until `until` (epoch ms). Adding an id that is already ignored replaces its
   * deadline. A deadline in the past expires on the next timer turn, never synchronously.
   */
  add(task: Task, until: number, opts: { dropOnWithdraw?: boolean } = {}): void {
    if (this.closed || Number.isNaN(until)) return;
    const entry: Entry = { task, until, dropOnWithdraw: opts.dropOnWithdraw ?? false };
    this.current.set(task.id, entry);
    this.push(entry);
    if (until < this.timerAt) this.arm();
  }

  has(id: string): boolean {
    return this.current.has(id);
  }

  /**
   * The task was claimed elsewhere or deleted: drop its entry if it was added with
   * dropOnWithdraw (a balancer's "not now"), so its expiry does not cost a claim that must
   * fail. Back-off entries stay: a failing task must not bounce between nodes without delay.
   */
  forgetWithdrawn(id: string): void {
    if (this.current.size === 0) return; // the common case, on every withdrawal: no lookup
    if (this.current.get(id)?.dropOnWithdraw) this.current.delete(id);
  }

  /** Stop ignoring `id` without re-announcing it. */
  delete(id: string): void {
    this.current.delete(id);
  }

  /** Ids currently ignored, in no particular order. */
  ids(): string[] {
    return [...this.current.keys()];
  }

  get size(): number {
    return this.current.size;
  }

  /** Drop everything and disarm the timer; later adds are ignored. */
  close(): void {
    this.closed = true;
    this.current.clear();
    this.heap.length = 0;
    this.disarm();
  }

  private arm(): void {
    this.disarm();
    const top = this.heap[0];
    if (!top) return;
    this.timerAt = top.until;
    const delay = Math.min(Math.max(top.until - this.now(), 0), MAX_TIMER_DELAY);
    this.timer = setTimeout(() => this.fire(), delay);
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.now();
    const expired: Task[] = [];
    for (let top = this.heap[0]; top && top.until <= now; top = this.heap[0]) {
      this.pop();
      // Only the current entry for an id counts; replaced or deleted ones are stale.
      if (this.current.get(top.task.id) !== top) continue;
      this.current.delete(top.task.id);
      expired.push(top.task);
    }
    this.arm();
    // Hand tasks back after the list is consistent, so onExpire may call add() again.
    for (const task of expired) {
      if (this.closed) return;
      this.onExpire(task);
    }
  }

  private push(entry: Entry): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.until <= entry.until) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = entry;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (h.length === 0 || !last) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const child = r < h.length && h[r]!.until < h[l]!.until ? r : l;
      if (h[child]!.until >= last.until) break;
      h[i] = h[child]!;
      i = child;
    }
    h[i] = last;
  }
}
