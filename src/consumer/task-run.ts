/**
 * One claimed task on this node: its handler's context (abort signal, token, stop listeners,
 * the pause-proof ownership primitives) and the bookkeeping the consumer and balancers read
 * (started, first stop, reason).
 */
import { decodeCheckpoint, encodeCheckpoint } from "../checkpoint.ts";
import { ClaimLostError, describeError, MetaforaError, StopError } from "../errors.ts";
import { MAX_TIMER_DELAY } from "../internal/timers.ts";
import { stallWatch } from "../stall-watch.ts";
import type { Client, HandlerContext, Logger, RunningTask, StopReason, Task } from "../types.ts";

export interface TaskRunOptions {
  task: Task;
  handler: string;
  token: number;
  node: string;
  /** Builds the task's logger; called at most once, on first use (most tasks never log). */
  log: () => Logger;
  client: Client;
  /** Epoch ms, for display (HandlerContext.claimDeadline). */
  claimDeadline: () => number;
  /** The claim deadline on the monotonic clock (performance.now() ms). */
  claimDeadlineMonotonic: () => number;
  /** Stalls longer than this (ms) may have cost the claim; Infinity when they cannot. */
  stallMargin: number;
  /** Fenced checkpoint write, or undefined when the coordinator has none. */
  storeCheckpoint?: (json: string) => Promise<void>;
  /** Name of the coordinator, for the error when it cannot store checkpoints. */
  coordinatorName: string;
  /** The task's last checkpoint (JSON text), from the claim. */
  lastCheckpoint?: string;
}

/** TaskRun behind each context the consumer built, for claimStillHeld(). */
const runs = new WeakMap<HandlerContext, TaskRun>();

/**
 * Whether the claim behind `ctx` is still held: not lost, deadline not passed, no stall past
 * the margin. Unlike ctx.owned() it ignores stop requests, so code leaving a task on a stop
 * (the state machine storing its last state) can tell whether it may still write.
 * Contexts not made by the consumer count as held (their fenced writes still check).
 */
export function claimStillHeld(ctx: HandlerContext): boolean {
  const run = runs.get(ctx);
  return run ? run.claimHeld() : true;
}

export class TaskRun implements RunningTask {
  readonly task: Task;
  readonly handler: string;
  readonly token: number;
  readonly started = Date.now();
  /** performance.now() at the claim: stalls after this count against it. */
  private readonly startedMono = performance.now();
  stopped: number | undefined;
  stopReason: StopReason | undefined;
  /** Set when the coordinator says this node no longer holds the claim. */
  lostReason: "lost" | "deleted" | undefined;
  readonly context: HandlerContext;

  private readonly controller = new AbortController();
  private readonly stopListeners = new Set<(reason: StopReason, count: number) => void>();
  private stopCount = 0;
  private logger: Logger | undefined;
  private readonly makeLog: () => Logger;
  private readonly deadlineMono: () => number;
  private readonly stallMargin: number;
  /** Why the claim can no longer be vouched for, once it cannot (latched). */
  private forfeit: string | undefined;
  private disposed = false;

  constructor(opts: TaskRunOptions) {
    this.task = opts.task;
    this.handler = opts.handler;
    this.token = opts.token;
    this.makeLog = opts.log;
    this.deadlineMono = opts.claimDeadlineMonotonic;
    this.stallMargin = opts.stallMargin;
    stallWatch.acquire(this.stallMargin);
    const listeners = this.stopListeners;
    const run = this;
    let lastCheckpoint: { value: unknown } | undefined;
    this.context = {
      signal: this.controller.signal,
      token: opts.token,
      node: opts.node,
      get log() {
        return run.log;
      },
      claimDeadline: opts.claimDeadline,
      client: opts.client,
      onStop(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      owned: () => this.owned(),
      sleep: (ms) => this.sleep(ms),
      checkpoint: (value) => this.checkpoint(value, opts),
      get lastCheckpoint() {
        lastCheckpoint ??= { value: decodeCheckpoint(opts.lastCheckpoint, (problem) => run.log.warn(problem)) };
        return lastCheckpoint.value;
      },
    };
    runs.set(this.context, this);
  }

  get log(): Logger {
    return (this.logger ??= this.makeLog());
  }

  /** See HandlerContext.owned. */
  owned(): boolean {
    return this.stopped === undefined && this.claimHeld();
  }

  /** The claim still stands as far as this node can tell (stop requests aside). Latches false. */
  claimHeld(): boolean {
    if (this.forfeit !== undefined || this.lostReason !== undefined) return false;
    if (this.stopReason === "lease") return false;
    const now = performance.now();
    let why: string | undefined;
    if (now >= this.deadlineMono()) why = "its claim deadline passed";
    else if (stallWatch.stalledSince(this.startedMono, this.stallMargin, now)) {
      why = `the process stalled for longer than the safety margin (${this.stallMargin} ms)`;
    }
    if (why === undefined) return true;
    this.forfeit = why;
    this.log.warn(`no longer vouching for the claim (token ${this.token}): ${why}; stopping`);
    // The lease watchdog suspends the node too, but perhaps only later: stop this task now.
    this.requestStop("lease");
    return false;
  }

  /** See HandlerContext.sleep. */
  sleep(ms: number): Promise<boolean> {
    if (typeof ms !== "number" || Number.isNaN(ms) || ms < 0) {
      return Promise.reject(new TypeError(`ctx.sleep(ms): ms must be a number >= 0, got ${String(ms)}`));
    }
    if (!this.owned()) return Promise.resolve(false);
    const signal = this.controller.signal;
    const wakeAt = performance.now() + ms;
    return new Promise<boolean>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = (result: boolean): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        resolve(result);
      };
      const onAbort = (): void => finish(false);
      // Wake at `ms`, or earlier at the claim deadline (which may have moved on meanwhile).
      const arm = (): void => {
        const now = performance.now();
        const delay = Math.max(0, Math.min(wakeAt, this.deadlineMono()) - now);
        timer = setTimeout(tick, Math.min(delay, MAX_TIMER_DELAY));
      };
      const tick = (): void => {
        timer = undefined;
        if (!this.owned()) finish(false);
        else if (performance.now() >= wakeAt)
          finish(true); // checked synchronously right before
        else arm();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      arm();
    });
  }

  private async checkpoint(value: unknown, opts: TaskRunOptions): Promise<void> {
    const json = encodeCheckpoint(this.task.id, value);
    if (!opts.storeCheckpoint) {
      throw new MetaforaError(`task "${this.task.id}": coordinator ${opts.coordinatorName} cannot store checkpoints`);
    }
    if (!this.claimHeld()) throw new ClaimLostError(this.task.id, this.token, "checkpoint");
    try {
      await opts.storeCheckpoint(json);
    } catch (err) {
      if (err instanceof ClaimLostError) this.claimRefused(err);
      throw err;
    }
  }

  /** A fenced write was refused: the claim is gone. One log line, then stop (reason "lost"). */
  claimRefused(err: ClaimLostError): void {
    if (this.lostReason === undefined) {
      this.lostReason = "lost";
      this.log.warn(err.message);
    }
    this.requestStop("lost");
  }

  /**
   * Ask the handler to stop. The first request aborts the signal (reason: StopError); every
   * request, repeats included, reaches the onStop listeners. Never throws.
   */
  requestStop(reason: StopReason): void {
    this.stopCount++;
    if (this.stopped === undefined) {
      this.stopped = Date.now();
      this.stopReason = reason;
      try {
        this.controller.abort(new StopError(reason, this.task.id));
      } catch (err) {
        // An abort event listener threw; the signal is aborted regardless.
        this.log.error(`abort listener threw: ${describeError(err)}`);
      }
    }
    for (const listener of [...this.stopListeners]) {
      try {
        listener(reason, this.stopCount);
      } catch (err) {
        this.log.error(`onStop listener threw: ${describeError(err)}`);
      }
    }
  }

  /** The handler has returned: stop watching for stalls on its behalf. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    stallWatch.release(this.stallMargin);
  }

  /** Plain snapshot for callers outside the consumer. */
  view(): RunningTask {
    const v: { -readonly [K in keyof RunningTask]: RunningTask[K] } = {
      task: this.task,
      handler: this.handler,
      started: this.started,
      token: this.token,
    };
    if (this.stopped !== undefined) v.stopped = this.stopped;
    if (this.stopReason !== undefined) v.stopReason = this.stopReason;
    return v;
  }
}
