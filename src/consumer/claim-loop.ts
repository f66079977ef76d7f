/**
 * The claim loop: how an announced task becomes a claim on this node.
 *
 * A task on its way to a claim here is in exactly one of four places, all owned by this class:
 *   - pending:  announced and waiting for a claim worker (deduplicated, announcement order);
 *   - inFlight: taken by a worker, which is asking the balancer and then the coordinator
 *               (`claiming` counts the coordinator calls not answered yet);
 *   - held:     announced again while it runs or is being claimed here; offered again when
 *               that run or attempt ends (so no announcement is lost and none is doubled);
 *   - ignored:  deferred by the balancer or backed off after an error or a quick release;
 *               announced again when its deadline passes.
 * Once claimed it belongs to the consumer's running tasks, and the loop no longer tracks it.
 *
 * Workers drain the pending set without blocking the event loop: a burst of announcements is
 * batched into one drain after the current turn, and a worker whose claims resolve as
 * microtasks yields to timers and I/O every few attempts or milliseconds.
 */
import { setImmediate } from "node:timers";
import { describeError } from "../errors.ts";
import type { Balancer, Claim, ClaimDecision, Coordinator, Logger, Task } from "../types.ts";
import type { ConsumerState } from "./events.ts";
import { IgnoreList } from "./ignore-list.ts";
import type { Route } from "./options.ts";
import { PendingQueue } from "./pending-queue.ts";

/** A balancer or coordinator that throws on a task: look at it again after this long. */
const RETRY_AFTER_FAILURE_MS = 1_000;
/** The claim loop yields to the event loop after this many attempts or this many ms. */
const YIELD_EVERY_ATTEMPTS = 64;
const YIELD_EVERY_MS = 8;

/** What the claim loop needs from the consumer it claims for. */
export interface ClaimLoopHost {
  readonly log: Logger;
  readonly balancer: Balancer;
  readonly coordinator: Coordinator;
  readonly route: (task: Task) => Route | undefined;
  readonly maxTasks: number;
  readonly claimConcurrency: number;
  state(): ConsumerState;
  frozen(): boolean;
  /** Whether this task's handler is running here. */
  isRunning(taskId: string): boolean;
  runningCount(): number;
  /** The claim was won: run the task. */
  claimed(task: Task, route: Route, claim: Claim): void;
  /** The claim was won after the node stopped claiming: release it. */
  handBack(task: Task): void;
  /** A claim race was lost, or the task was gone. */
  claimMissed(taskId: string): void;
  /** An ignored task's deadline passed (it is about to be announced again). */
  ignoreEnded(taskId: string): void;
  /** Something the consumer may be waiting on changed (an attempt ended). */
  checkIdle(): void;
}

export class ClaimLoop {
  /** Tasks this node leaves alone until a deadline (balancer deferral, error or release back-off). */
  readonly ignore: IgnoreList;
  private readonly pending = new PendingQueue();
  /** Ids taken from the pending set whose claim attempt is not finished. */
  private readonly inFlight = new Set<string>();
  /** Announcements that arrived while the task was running or being claimed here. */
  private readonly held = new Map<string, Task>();
  /** Claims sent to the coordinator and not answered yet (counted as ours by balancers). */
  private claimCalls = 0;
  private drainScheduled = false;
  private workers = 0;
  /** Event-loop turns seen by the claim workers (see watchLoopTurn). */
  private loopTurns = 0;
  private loopTurnArmed = false;

  constructor(private readonly host: ClaimLoopHost) {
    this.ignore = new IgnoreList((task) => {
      host.ignoreEnded(task.id);
      this.announce(task);
    });
  }

  /** Claim attempts not finished yet (balancer or coordinator still deciding). */
  get attempting(): number {
    return this.inFlight.size;
  }

  /** Claims sent to the coordinator and not answered yet. */
  get claiming(): number {
    return this.claimCalls;
  }

  /** The coordinator says this task is claimable; lower ranks are tried first (rendezvous order). */
  announce(task: Task, rank = 0): void {
    const state = this.host.state();
    if (state === "stopping" || state === "stopped") return;
    if (!task || typeof task.id !== "string") {
      this.host.log.error(`coordinator announced something that is not a task: ${describeError(task)}`);
      return;
    }
    if (this.host.isRunning(task.id) || this.inFlight.has(task.id)) {
      // Reconsidered when the current run or claim attempt ends (see releaseHeld).
      this.held.set(task.id, task);
      return;
    }
    this.pending.put(task, rank);
    this.scheduleDrain();
  }

  /** Announced tasks waiting for a claim attempt. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** The coordinator says this task is no longer claimable. */
  withdraw(taskId: string): void {
    // Called for every task another node claims: skip the lookups that cannot find anything.
    if (this.pending.size > 0) this.pending.delete(taskId);
    if (this.held.size > 0) this.held.delete(taskId);
    this.ignore.forgetWithdrawn(taskId);
  }

  /** Hand an announcement that arrived while the task was busy here back to the claim loop. */
  releaseHeld(id: string): void {
    const task = this.held.get(id);
    if (!task) return;
    this.held.delete(id);
    this.announce(task);
  }

  /** Drop a held announcement (the task is done). */
  forgetHeld(id: string): void {
    this.held.delete(id);
  }

  /** Forget everything waiting (shutdown); attempts in flight finish on their own. */
  clear(): void {
    this.pending.clear();
    this.held.clear();
  }

  /** Start claim workers after the current turn, if there is something to claim and room for it. */
  scheduleDrain(): void {
    if (this.drainScheduled || !this.claimable()) return;
    this.drainScheduled = true;
    // Batch a burst of announcements into one drain, after the current turn.
    setImmediate(() => {
      this.drainScheduled = false;
      while (this.workers < this.host.claimConcurrency && this.claimable()) {
        this.workers++;
        void this.claimWorker().finally(() => {
          this.workers--;
          this.scheduleDrain();
        });
      }
    });
  }

  private claimable(): boolean {
    return (
      this.host.state() === "running" &&
      !this.host.frozen() &&
      this.pending.size > 0 &&
      this.host.runningCount() + this.inFlight.size < this.host.maxTasks
    );
  }

  private async claimWorker(): Promise<void> {
    let attempts = 0;
    let lastYield = Date.now();
    while (this.claimable()) {
      const next = this.takeNext();
      if (!next) return;
      const turn = this.watchLoopTurn();
      await this.attemptClaim(next.task, next.route);
      if (this.loopTurns !== turn) {
        // The claim waited for I/O: timers and I/O have just run, no need to yield again. (An
        // extra turn here would also make this worker miss the coordinator's next batch.)
        attempts = 0;
        lastYield = Date.now();
      } else if (++attempts >= YIELD_EVERY_ATTEMPTS || Date.now() - lastYield >= YIELD_EVERY_MS) {
        // Claims on a fast coordinator resolve as microtasks; let timers and I/O run.
        await new Promise<void>((resolve) => setImmediate(resolve));
        attempts = 0;
        lastYield = Date.now();
      }
    }
  }

  /** The current event-loop turn number; it changes once the loop has run timers and I/O. */
  private watchLoopTurn(): number {
    if (!this.loopTurnArmed) {
      this.loopTurnArmed = true;
      setImmediate(() => {
        this.loopTurnArmed = false;
        this.loopTurns++;
      });
    }
    return this.loopTurns;
  }

  /** The next pending task worth a claim attempt, marked in flight. */
  private takeNext(): { task: Task; route: Route } | undefined {
    for (let task = this.pending.take(); task; task = this.pending.take()) {
      const id = task.id;
      if (this.ignore.has(id)) continue;
      if (this.host.isRunning(id) || this.inFlight.has(id)) {
        this.held.set(id, task);
        continue;
      }
      const route = this.host.route(task);
      if (!route) {
        this.host.log.debug(`task ${id}: no handler for it on this node; not claiming`);
        continue;
      }
      this.inFlight.add(id);
      return { task, route };
    }
    return undefined;
  }

  private async attemptClaim(task: Task, route: Route): Promise<void> {
    const id = task.id;
    const host = this.host;
    try {
      let decision: ClaimDecision;
      try {
        decision = await host.balancer.canClaim(task);
      } catch (err) {
        host.log.error(`balancer.canClaim(${id}) failed: ${describeError(err)}`);
        decision = { claim: false, until: Date.now() + RETRY_AFTER_FAILURE_MS };
      }
      if (!decision?.claim) {
        if (decision && decision.until !== undefined) this.ignore.add(task, decision.until, { dropOnWithdraw: true });
        return;
      }
      if (host.state() !== "running" || host.frozen()) {
        this.pending.put(task); // the node stopped claiming while the balancer decided
        return;
      }
      let claim: Claim | undefined;
      this.claimCalls++;
      try {
        claim = await host.coordinator.claim(task);
      } catch (err) {
        host.log.warn(`claim of ${id} failed: ${describeError(err)}; retrying later`);
        this.ignore.add(task, Date.now() + RETRY_AFTER_FAILURE_MS);
        return;
      } finally {
        this.claimCalls--;
      }
      if (!claim) {
        host.claimMissed(id);
        return;
      }
      const state = host.state();
      if (state !== "running") {
        // Shutdown or suspension began while claiming: hand it straight back.
        host.log.debug(`claimed ${id} while ${state}; releasing it`);
        host.handBack(task);
        return;
      }
      host.claimed(task, route, claim);
    } finally {
      this.inFlight.delete(id);
      if (!host.isRunning(id)) this.releaseHeld(id);
      host.checkIdle();
    }
  }
}
