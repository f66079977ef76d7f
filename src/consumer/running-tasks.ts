/**
 * The tasks running on this node: one TaskRun per won claim, from the claim until its handler
 * returns or throws. Then the run leaves this set and settlement (settle.ts) takes over.
 */
import type { Emitter } from "../events.ts";
import { scopedLogger } from "../log.ts";
import type { Claim, Coordinator, HandlerResult, Logger, RunningTask, StopReason, Task } from "../types.ts";
import type { ConsumerEvents } from "./events.ts";
import type { Route } from "./options.ts";
import { TaskRun } from "./task-run.ts";

/** What the running tasks need from the consumer they run on. */
export interface RunningTasksHost {
  readonly node: string;
  readonly log: Logger;
  readonly coordinator: Coordinator;
  readonly events: Emitter<ConsumerEvents>;
  /** The handler of `run` returned `value` or threw `error`; the run has left the set. */
  ended(run: TaskRun, value: unknown, error: unknown, threw: boolean): void;
}

export class RunningTasks {
  /** Handlers that have not returned yet, by task id. */
  private readonly runs = new Map<string, TaskRun>();

  constructor(private readonly host: RunningTasksHost) {}

  get size(): number {
    return this.runs.size;
  }

  has(taskId: string): boolean {
    return this.runs.has(taskId);
  }

  /** Whether this running task has already been asked to stop. */
  stopping(taskId: string): boolean {
    return this.runs.get(taskId)?.stopped !== undefined;
  }

  /** Ids of the running tasks, sorted. */
  ids(): string[] {
    return [...this.runs.keys()].sort();
  }

  /** What balancers and operators see of each running task, sorted by id. */
  views(): RunningTask[] {
    return this.ids().map((id) => this.runs.get(id)!.view());
  }

  /** Ask every running handler to stop. */
  stopAll(reason: StopReason): void {
    for (const run of this.runs.values()) run.requestStop(reason);
  }

  /**
   * Ask a running task's handler to stop (every call reaches its onStop listeners; the signal
   * aborts on the first). Returns false (with a warning) when the task is not running here.
   */
  stop(id: string, reason: StopReason): boolean {
    const run = this.runs.get(id);
    if (!run) {
      this.host.log.warn(`stop ${JSON.stringify(id)} (${reason}): not running on this node`);
      return false;
    }
    run.requestStop(reason);
    return true;
  }

  /** The coordinator says the claim is gone: stop the handler; the task is neither released nor done. */
  lost(taskId: string, reason: "lost" | "deleted"): void {
    const log = this.host.log;
    const run = this.runs.get(taskId);
    if (!run) {
      log.debug(`coordinator reports task ${taskId} ${reason}; it is not running here`);
      return;
    }
    run.lostReason ??= reason;
    log.warn(
      reason === "deleted"
        ? `task ${taskId} was deleted while running; stopping it`
        : `lost the claim on task ${taskId}; stopping it`,
    );
    run.requestStop(reason);
  }

  /** A claim was won: run the task's handler with a context bound to this claim. */
  start(task: Task, route: Route, claim: Claim): void {
    const { node, log, coordinator, events } = this.host;
    const { token } = claim;
    const monotonic = coordinator.claimDeadlineMonotonic
      ? () => coordinator.claimDeadlineMonotonic!()
      : () => performance.now() + (coordinator.claimDeadline() - Date.now());
    const run = new TaskRun({
      task,
      handler: route.name,
      token,
      node,
      log: () => scopedLogger(`task ${task.id}`, log),
      client: coordinator.client,
      claimDeadline: () => coordinator.claimDeadline(),
      claimDeadlineMonotonic: monotonic,
      stallMargin: coordinator.stallMargin ?? Infinity,
      coordinatorName: coordinator.name,
      ...(coordinator.checkpoint
        ? { storeCheckpoint: (json: string) => coordinator.checkpoint!(task, token, json) }
        : {}),
      ...(claim.checkpoint !== undefined ? { lastCheckpoint: claim.checkpoint } : {}),
    });
    this.runs.set(task.id, run);
    log.debug(`claimed ${task.id} (token ${token}, handler ${route.name})`);
    events.emit("claimed", { task, token, handler: route.name });
    let result: Promise<HandlerResult>;
    try {
      result = Promise.resolve(route.handler.run(task, run.context));
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (value) => this.ended(run, value, undefined, false),
      (err) => this.ended(run, undefined, err, true),
    );
  }

  private ended(run: TaskRun, value: unknown, error: unknown, threw: boolean): void {
    if (this.runs.get(run.task.id) === run) this.runs.delete(run.task.id);
    this.host.ended(run, value, error, threw);
  }
}
