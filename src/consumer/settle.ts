/**
 * Settlement: what happens when a task's handler returns or throws.
 *
 * "done" finishes the task; "release" (or anything else) hands it back; a throw hands it back
 * and backs this node off the task exponentially (never done: a Go node would delete it). A
 * run whose claim was lost or deleted is neither released nor done. A quick release is paced
 * (see release-pacing.ts) so no handler result can make a node spin. Every release/done call
 * is tracked until it settles, so shutdown can wait for it and report the ones that failed.
 */
import { ClaimLostError, describeError, MetaforaError } from "../errors.ts";
import type { Emitter } from "../events.ts";
import type { Coordinator, HandlerResult, Logger, Task } from "../types.ts";
import type { ClaimLoop } from "./claim-loop.ts";
import type { ConsumerEvents, ConsumerState } from "./events.ts";
import { ReleasePacer, type ReleasePacingOptions } from "./release-pacing.ts";
import type { TaskRun } from "./task-run.ts";

/** What settlement needs from the consumer it settles for. */
export interface SettlementHost {
  readonly log: Logger;
  readonly coordinator: Coordinator;
  readonly events: Emitter<ConsumerEvents>;
  readonly claims: ClaimLoop;
  readonly backoff: { initial: number; max: number };
  readonly pacing: ReleasePacingOptions;
  state(): ConsumerState;
  /** Set once shutdown stopped waiting: later handler results are logged and ignored. */
  gaveUp(): boolean;
  /** Something the consumer may be waiting on changed (a run or a release/done call ended). */
  checkIdle(): void;
}

export class Settlement {
  /** Pending release/done calls. */
  private readonly finishing = new Set<Promise<void>>();
  /** Consecutive handler failures per task id, for the back-off. */
  private readonly failures = new Map<string, number>();
  private readonly pacer: ReleasePacer;
  /** Tasks whose release/done failed while stopping (see ShutdownReport.unreleased). */
  private readonly unreleasedIds = new Set<string>();
  /** Back-off deadlines (error or quick release) per task id, for ignoredUntil(). */
  private readonly backoffUntil = new Map<string, number>();

  constructor(private readonly host: SettlementHost) {
    this.pacer = new ReleasePacer(host.pacing);
  }

  /** Release/done calls not settled yet. */
  get finishingCount(): number {
    return this.finishing.size;
  }

  /** Tasks whose release/done failed while stopping, sorted. */
  unreleased(): string[] {
    return [...this.unreleasedIds].sort();
  }

  /** The handler of `run` returned `value` or threw `error` (the run is no longer running). */
  ended(run: TaskRun, value: unknown, error: unknown, threw: boolean): void {
    const id = run.task.id;
    run.dispose();
    if (threw && error instanceof ClaimLostError) {
      // A fenced write was refused: the claim is gone. Not a handler failure (no back-off, no stack).
      run.claimRefused(error);
      threw = false;
    }
    if (this.host.gaveUp()) {
      const outcome = threw ? `threw: ${describeError(error)}` : `returned ${JSON.stringify(value)}`;
      this.host.log.warn(`handler of ${id} ${outcome} after shutdown gave up on it; ignored`);
      return;
    }
    try {
      this.settle(run, value, error, threw);
    } catch (err) {
      this.host.log.error(`finishing ${id} failed: ${describeError(err)}`);
    }
    this.host.checkIdle();
    this.host.claims.scheduleDrain();
  }

  /** Release a task claimed after the node stopped claiming. */
  handBack(task: Task): void {
    this.track(this.host.coordinator.release(task), `release of ${task.id}`, task.id);
  }

  /** When this node's back-off from `id` (handler error or quick release) ends, if it is backing off. */
  ignoredUntil(id: string): number | undefined {
    const until = this.backoffUntil.get(id);
    if (until === undefined || !this.host.claims.ignore.has(id)) return undefined;
    if (until <= Date.now()) {
      this.backoffUntil.delete(id);
      return undefined;
    }
    return until;
  }

  /** The ignore list let go of `id`: its back-off is over. */
  backoffEnded(id: string): void {
    this.backoffUntil.delete(id);
  }

  private settle(run: TaskRun, value: unknown, error: unknown, threw: boolean): void {
    const { log, events, claims, coordinator } = this.host;
    const { task } = run;
    const id = task.id;
    const elapsed = run.stopped !== undefined ? ` ${Date.now() - run.stopped} ms after stop (${run.stopReason})` : "";
    if (threw) {
      const failures = (this.failures.get(id) ?? 0) + 1;
      this.failures.set(id, failures);
      const delay = Math.min(this.host.backoff.initial * 2 ** (failures - 1), this.host.backoff.max);
      // The library's own errors (an unreadable stored state, a lost claim) say everything in
      // their message; their stack is for debugging. A handler's own error keeps its stack.
      const why = error instanceof MetaforaError ? `${error.name}: ${error.message}` : describeError(error);
      log.error(`handler of ${id} failed (failure ${failures}; not retrying here for ${delay} ms): ${why}`);
      if (error instanceof MetaforaError && error.stack) log.debug(error.stack);
      events.emit("handlerError", { taskId: id, error });
      // Ignore before releasing: the release re-announces the task to this node too.
      if (!run.lostReason) {
        claims.ignore.add(task, Date.now() + delay);
        this.backoffUntil.set(id, Date.now() + delay);
      }
    } else {
      this.failures.delete(id);
    }

    if (run.lostReason) {
      log.info(
        `task ${id} stopped${elapsed}; its claim was ${run.lostReason === "deleted" ? "deleted" : "lost"}, so neither released nor done`,
      );
      events.emit("lost", { taskId: id, reason: run.lostReason });
      claims.releaseHeld(id);
      return;
    }

    let outcome: HandlerResult = "release";
    const valid = value === "done" || value === "release";
    if (!threw && valid) outcome = value;
    const paced =
      !threw && outcome === "release" && run.stopReason === undefined
        ? this.paceRelease(run, valid ? undefined : value)
        : false;
    if (!threw && !valid && !paced)
      log.warn(`handler of ${id} returned ${describeResult(value)}; expected "done" or "release"; releasing`);
    if (outcome === "done") {
      this.pacer.forget(id);
      this.backoffUntil.delete(id);
      claims.forgetHeld(id);
      this.track(
        coordinator.done(task).then(() => {
          log.debug(`task ${id} done${elapsed}`);
          events.emit("done", { taskId: id });
        }),
        `done of ${id}`,
        id,
      );
      return;
    }
    this.track(
      coordinator.release(task).then(() => {
        log.debug(`task ${id} released${elapsed}`);
        const payload: ConsumerEvents["released"] = { taskId: id };
        if (run.stopReason !== undefined) payload.reason = run.stopReason;
        if (threw) payload.error = error;
        events.emit("released", payload);
        claims.releaseHeld(id);
      }),
      `release of ${id}`,
      id,
    );
  }

  /**
   * The handler handed its task back on its own. A quick one is ignored here for a growing
   * while (before the release re-announces it); logged once per streak, not per cycle.
   * Returns true when it logged (an invalid result included).
   */
  private paceRelease(run: TaskRun, invalid: unknown): boolean {
    const id = run.task.id;
    const ranFor = Date.now() - run.started;
    const decision = this.pacer.released(id, ranFor);
    if (!decision) return false;
    const until = Date.now() + decision.delay;
    this.host.claims.ignore.add(run.task, until);
    this.backoffUntil.set(id, until);
    this.host.events.emit("releaseBackoff", { taskId: id, delay: decision.delay, repeats: decision.repeats, until });
    const what =
      invalid === undefined
        ? `handler ${run.handler} released ${id}`
        : `handler of ${id} returned ${describeResult(invalid)}; expected "done" or "release"; releasing it`;
    const message = `${what} ${ranFor} ms after its claim; not claiming it here for ${decision.delay} ms (doubling up to ${this.pacer.options.max} ms while it keeps doing so)`;
    if (decision.first) this.host.log.warn(message);
    else this.host.log.debug(message);
    return true;
  }

  /** Keep a release/done call in `finishing` until it settles; log its failure. */
  private track(op: Promise<void>, what: string, taskId?: string): void {
    const p: Promise<void> = op
      .catch((err) => {
        const state = this.host.state();
        if (taskId !== undefined && (state === "stopping" || state === "stopped")) this.unreleasedIds.add(taskId);
        this.host.log.error(`${what} failed: ${err instanceof Error ? err.message : describeError(err)}`);
        if (err instanceof Error && err.stack) this.host.log.debug(err.stack);
      })
      .finally(() => {
        this.finishing.delete(p);
        this.host.checkIdle();
        this.host.claims.scheduleDrain();
      });
    this.finishing.add(p);
  }
}

/** A handler's return value for a log line, never throwing and never huge. */
function describeResult(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? "undefined" : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
