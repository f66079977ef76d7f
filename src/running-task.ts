/**
 * One claimed task on this node: its handler's context (abort signal, token, stop listeners)
 * and the bookkeeping the consumer and balancers read (started, first stop, reason).
 */
import { describeError, StopError } from "./errors.ts";
import type { Client, HandlerContext, Logger, RunningTask, StopReason, Task } from "./types.ts";

export interface TaskRunOptions {
  task: Task;
  handler: string;
  token: number;
  node: string;
  /** Builds the task's logger; called at most once, on first use (most tasks never log). */
  log: () => Logger;
  client: Client;
  claimDeadline: () => number;
}

export class TaskRun implements RunningTask {
  readonly task: Task;
  readonly handler: string;
  readonly token: number;
  readonly started = Date.now();
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

  constructor(opts: TaskRunOptions) {
    this.task = opts.task;
    this.handler = opts.handler;
    this.token = opts.token;
    this.makeLog = opts.log;
    const listeners = this.stopListeners;
    const run = this;
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
    };
  }

  get log(): Logger {
    return (this.logger ??= this.makeLog());
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
