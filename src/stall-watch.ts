/**
 * Process stall detection for ctx.owned(): a frequent heartbeat on the monotonic clock.
 *
 * When a process is paused (SIGSTOP, a GC pause, a stalled VM) and resumes, its overdue timers
 * fire in the order they were due: a handler's own timer may run before any watchdog has had
 * a turn. So a stall must be visible to the very first ownership check after it, whoever runs
 * first. Two things make it so:
 *
 *  - `lastBeat`, set by a timer every BEAT_MS. A check that finds it older than the margin is
 *    itself running right after a stall (the heartbeat could not run).
 *  - Each heartbeat measures the gap since the previous one. A gap longer than a registered
 *    margin is recorded (per margin) with the time it ended, so checks that run after the
 *    heartbeat has already caught up still see that a stall happened during their claim.
 *
 * The timer runs only while some claim uses it (acquire/release), and never keeps the process
 * alive on its own.
 */
import { clearInterval, setInterval } from "node:timers";

/** Heartbeat period, ms. Well below the smallest safety margin (1 s by default for etcd). */
export const BEAT_MS = 50;

export class StallWatch {
  private lastBeat = performance.now();
  private timer: ReturnType<typeof setInterval> | undefined;
  /** margin ms → how many claims use it. */
  private readonly users = new Map<number, number>();
  /** margin ms → monotonic time the last stall longer than the margin ended. */
  private readonly lastStallEnd = new Map<number, number>();

  /** Start watching for stalls longer than `marginMs` (call release() with the same value). */
  acquire(marginMs: number): void {
    if (!Number.isFinite(marginMs)) return;
    this.users.set(marginMs, (this.users.get(marginMs) ?? 0) + 1);
    if (!this.timer) {
      this.lastBeat = performance.now();
      this.timer = setInterval(() => this.beat(), BEAT_MS);
      (this.timer as { unref?: () => void }).unref?.();
    }
  }

  release(marginMs: number): void {
    if (!Number.isFinite(marginMs)) return;
    const n = (this.users.get(marginMs) ?? 0) - 1;
    if (n > 0) {
      this.users.set(marginMs, n);
      return;
    }
    this.users.delete(marginMs);
    this.lastStallEnd.delete(marginMs);
    if (this.users.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /**
   * Was the process stalled for longer than `marginMs` at any time after `sinceMono`
   * (performance.now() ms), including right now (no heartbeat for that long)?
   */
  stalledSince(sinceMono: number, marginMs: number, now = performance.now()): boolean {
    if (!Number.isFinite(marginMs)) return false;
    this.sample(now);
    const ended = this.lastStallEnd.get(marginMs);
    return ended !== undefined && ended > sinceMono;
  }

  private beat(): void {
    this.sample(performance.now());
  }

  /** Record a gap since the last beat that exceeds a margin, then move the beat forward. */
  private sample(now: number): void {
    const gap = now - this.lastBeat;
    for (const margin of this.users.keys()) if (gap > margin) this.lastStallEnd.set(margin, now);
    // A check is as good a proof of a running loop as a beat: it records the gap it saw just
    // as the heartbeat would, so the stall is not forgotten when the heartbeat runs next.
    this.lastBeat = now;
  }
}

/** The process-wide watch every claim on this process shares. */
export const stallWatch = new StallWatch();
