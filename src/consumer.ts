/**
 * The Consumer: one node's worker loop (ref §1.7, redesigned for an event loop).
 *
 * The coordinator pushes announcements into a deduplicated pending set; a claim loop drains it
 * (asking the balancer, then the coordinator) without blocking the event loop; each won claim
 * runs its handler with an AbortSignal. Handlers end in done or release, or, when they throw,
 * in release plus an exponential back-off on this node (never done: Go deletes the task).
 * Shutdown is bounded by a timeout and reports the tasks that did not stop.
 */
import { setImmediate } from "node:timers";
import { FairBalancer } from "./balancers/fair.ts";
import { PendingQueue } from "./claim-queue.ts";
import { ConfigError, describeError } from "./errors.ts";
import { Emitter } from "./events.ts";
import { routeTask } from "./handler.ts";
import { IgnoreList } from "./ignore.ts";
import { scopedLogger } from "./log.ts";
import { TaskRun } from "./running-task.ts";
import type {
  Balancer,
  BalancerContext,
  Claim,
  ClaimDecision,
  Coordinator,
  CoordinatorContext,
  Handler,
  HandlerResult,
  Logger,
  NodeCommand,
  RunningTask,
  ShutdownReport,
  StopReason,
  Task,
} from "./types.ts";

export interface ConsumerOptions {
  coordinator: Coordinator;
  /** This node's name, unique among live nodes of the coordinator. */
  node: string;
  /** Library use: this one handler gets every task. */
  handler?: Handler;
  /** Runtime use: tasks are routed by routeTask(); tasks with no handler here are never claimed. */
  handlers?: Record<string, Handler> | Map<string, Handler>;
  /** Default: a FairBalancer. */
  balancer?: Balancer;
  /** Periodic balance interval in ms (default 5 min); Infinity disables it. */
  balanceEvery?: number;
  /** Each cycle waits balanceEvery + uniform jitter in [0, balanceJitter) ms (default 10 s). */
  balanceJitter?: number;
  /** At most this many running tasks (default Infinity); a full node never claims. */
  maxTasks?: number;
  /** After a handler throws, this node ignores the task for initial × 2^(failures−1) ms, capped at max. */
  errorBackoff?: { initial: number; max: number };
  /** Claims attempted concurrently (default 1). More helps high-latency coordinators. */
  claimConcurrency?: number;
  /** How long shutdown waits for coordinator.close(), ms (default 10 s). */
  closeTimeout?: number;
  log?: Logger;
}

/** Events the runtime's metrics and logs hang on. */
export interface ConsumerEvents {
  claimed: { task: Task; token: number; handler: string };
  /** A claim race was lost, or the task was gone. */
  claimMissed: { taskId: string };
  released: { taskId: string; reason?: StopReason; error?: unknown };
  done: { taskId: string };
  lost: { taskId: string; reason: StopReason };
  handlerError: { taskId: string; error: unknown };
  suspended: { deadline: number };
  // deno-lint-ignore ban-types
  resumed: {};
  command: { command: NodeCommand };
  stopped: ShutdownReport;
}

export type ConsumerState = "new" | "starting" | "running" | "suspended" | "stopping" | "stopped";

const DEFAULT_BALANCE_EVERY = 5 * 60_000;
const DEFAULT_BALANCE_JITTER = 10_000;
const DEFAULT_SHUTDOWN_TIMEOUT = 30_000;
const DEFAULT_CLOSE_TIMEOUT = 10_000;
const DEFAULT_ERROR_BACKOFF = { initial: 1_000, max: 5 * 60_000 };
/** A balancer or coordinator that throws on a task: look at it again after this long. */
const RETRY_AFTER_FAILURE_MS = 1_000;
/** The claim loop yields to the event loop after this many attempts or this many ms. */
const YIELD_EVERY_ATTEMPTS = 64;
const YIELD_EVERY_MS = 8;
const MAX_TIMER_DELAY = 2_147_483_647;

interface Route {
  readonly name: string;
  readonly handler: Handler;
}

export class Consumer {
  readonly node: string;
  private readonly coordinator: Coordinator;
  private readonly balancer: Balancer;
  private readonly log: Logger;
  private readonly route: (task: Task) => Route | undefined;
  private readonly balanceEvery: number;
  private readonly balanceJitter: number;
  private readonly maxTasks: number;
  private readonly backoff: { initial: number; max: number };
  private readonly claimConcurrency: number;
  private readonly closeTimeout: number;
  private readonly events: Emitter<ConsumerEvents>;

  private current: ConsumerState = "new";
  private isFrozen = false;
  /** Handlers that have not returned yet, by task id. */
  private readonly running = new Map<string, TaskRun>();
  /** Ids taken from the pending set whose claim attempt is not finished. */
  private readonly inFlight = new Set<string>();
  /** Claims sent to the coordinator and not answered yet (counted as ours by balancers). */
  private claiming = 0;
  /** Pending release/done calls. */
  private readonly finishing = new Set<Promise<void>>();
  private readonly pending = new PendingQueue();
  /** Announcements that arrived while the task was running or being claimed here. */
  private readonly held = new Map<string, Task>();
  private readonly ignore: IgnoreList;
  /** Consecutive handler failures per task id, for the back-off. */
  private readonly failures = new Map<string, number>();
  private readonly idleWaiters = new Set<() => void>();

  private drainScheduled = false;
  /** Event-loop turns seen by the claim workers (see watchLoopTurn). */
  private loopTurns = 0;
  private loopTurnArmed = false;
  private workers = 0;
  private balanceTimer: ReturnType<typeof setTimeout> | undefined;
  private balanceDue = false;
  private startPromise: Promise<void> | undefined;
  private shutdownPromise: Promise<ShutdownReport> | undefined;
  private forceShutdown: (() => void) | undefined;
  private finalReport: ShutdownReport | undefined;
  /** Set when shutdown stopped waiting: later handler results are logged and ignored. */
  private gaveUp = false;
  private readonly stoppedPromise: Promise<ShutdownReport>;
  private resolveStopped!: (report: ShutdownReport) => void;

  private readonly balancerContext: BalancerContext;
  private readonly coordinatorContext: CoordinatorContext;

  constructor(opts: ConsumerOptions) {
    if (!opts || typeof opts !== "object") throw new ConfigError("Consumer options must be an object");
    if (typeof opts.node !== "string" || opts.node.trim() === "") {
      throw new ConfigError(`Consumer option "node" must be a non-empty string, got ${JSON.stringify(opts.node)}`);
    }
    if (!opts.coordinator || typeof opts.coordinator.init !== "function") {
      throw new ConfigError(`Consumer option "coordinator" must be a Coordinator (an object with init, claim, release, done, close)`);
    }
    this.node = opts.node;
    this.coordinator = opts.coordinator;
    this.log = opts.log ?? scopedLogger(`node ${opts.node}`);
    this.route = buildRouter(opts);
    this.balancer = opts.balancer ?? new FairBalancer();
    if (typeof this.balancer.canClaim !== "function" || typeof this.balancer.balance !== "function") {
      throw new ConfigError(`Consumer option "balancer" must have canClaim(task) and balance() methods`);
    }
    this.balanceEvery = nonNegative("balanceEvery", opts.balanceEvery, DEFAULT_BALANCE_EVERY, true);
    this.balanceJitter = nonNegative("balanceJitter", opts.balanceJitter, DEFAULT_BALANCE_JITTER, false);
    this.maxTasks = opts.maxTasks ?? Infinity;
    if (!(this.maxTasks === Infinity || (Number.isInteger(this.maxTasks) && this.maxTasks >= 1))) {
      throw new ConfigError(`Consumer option "maxTasks" must be an integer >= 1 or Infinity, got ${String(opts.maxTasks)}`);
    }
    const backoff = opts.errorBackoff ?? DEFAULT_ERROR_BACKOFF;
    if (!backoff || !(backoff.initial >= 0) || !(backoff.max >= backoff.initial) || !Number.isFinite(backoff.max)) {
      throw new ConfigError(`Consumer option "errorBackoff" must be { initial, max } ms with 0 <= initial <= max, got ${JSON.stringify(opts.errorBackoff)}`);
    }
    this.backoff = { initial: backoff.initial, max: backoff.max };
    this.claimConcurrency = opts.claimConcurrency ?? 1;
    if (!Number.isInteger(this.claimConcurrency) || this.claimConcurrency < 1) {
      throw new ConfigError(`Consumer option "claimConcurrency" must be an integer >= 1, got ${String(opts.claimConcurrency)}`);
    }
    this.closeTimeout = nonNegative("closeTimeout", opts.closeTimeout, DEFAULT_CLOSE_TIMEOUT, false);
    this.events = new Emitter<ConsumerEvents>(this.log);
    this.ignore = new IgnoreList((task) => this.announce(task));
    this.stoppedPromise = new Promise((resolve) => (this.resolveStopped = resolve));

    const self = this;
    this.balancerContext = {
      node: this.node,
      tasks: () => this.tasks(),
      taskCount: () => this.running.size + this.claiming,
      get cluster() {
        return self.coordinator.cluster;
      },
    };
    this.coordinatorContext = {
      node: this.node,
      log: scopedLogger(this.coordinator.name, opts.log),
      announce: (task, rank) => this.announce(task, rank),
      withdraw: (taskId) => this.withdraw(taskId),
      command: (cmd) => this.handleCommand(cmd),
      lost: (taskId, reason) => this.lost(taskId, reason),
      suspend: (deadline) => this.suspend(deadline),
      resume: () => this.resume(),
    };
  }

  get state(): ConsumerState {
    return this.current;
  }

  /** Subscribe to an event; returns the unsubscribe function. */
  on<E extends keyof ConsumerEvents>(event: E, listener: (payload: ConsumerEvents[E]) => void): () => void {
    return this.events.on(event, listener);
  }

  /**
   * balancer.init, then coordinator.init. Resolves once the node is registered and watching;
   * rejects (and the consumer is stopped) if either fails.
   */
  start(): Promise<void> {
    if (this.startPromise) return this.startPromise;
    if (this.current !== "new") {
      return Promise.reject(new Error(`consumer "${this.node}" is ${this.current}; a consumer cannot be restarted, create a new one`));
    }
    this.current = "starting";
    this.startPromise = this.doStart();
    return this.startPromise;
  }

  /** Starts the consumer if needed; resolves with the shutdown report once it has shut down. */
  async run(): Promise<ShutdownReport> {
    if (this.current === "new" || this.startPromise) await this.start();
    return this.stoppedPromise;
  }

  /**
   * Stop claiming, ask every handler to stop (reason "shutdown"), release or finish each task as
   * its handler returns, and wait up to `timeout` ms (default 30 s). Handlers still running then
   * are reported in `stuck`. A second call while shutting down forces completion at once.
   */
  shutdown(opts: { timeout?: number } = {}): Promise<ShutdownReport> {
    if (this.finalReport) return Promise.resolve(this.finalReport);
    if (this.shutdownPromise) {
      this.log.warn("second shutdown request: not waiting for handlers any longer");
      this.forceShutdown?.();
      return this.shutdownPromise;
    }
    const timeout = opts.timeout ?? DEFAULT_SHUTDOWN_TIMEOUT;
    if (!(timeout >= 0)) return Promise.reject(new ConfigError(`shutdown timeout must be a number of ms >= 0, got ${String(opts.timeout)}`));
    this.shutdownPromise = this.doShutdown(timeout);
    return this.shutdownPromise;
  }

  /** Running tasks, sorted by id. */
  tasks(): RunningTask[] {
    const ids = [...this.running.keys()].sort();
    return ids.map((id) => this.running.get(id)!.view());
  }

  frozen(): boolean {
    return this.isFrozen;
  }

  /** Stop claiming (running tasks keep running; commands and balance still work). */
  freeze(): void {
    if (this.isFrozen) {
      this.log.info("freeze: already frozen");
      return;
    }
    this.isFrozen = true;
    this.log.info("frozen: not claiming new tasks");
  }

  unfreeze(): void {
    if (!this.isFrozen) {
      this.log.info("unfreeze: not frozen");
      return;
    }
    this.isFrozen = false;
    this.log.info("unfrozen: claiming again");
    this.runDueBalance();
    this.scheduleDrain();
  }

  /** Ids this node currently ignores (back-off or balancer deferral), in no particular order. */
  ignores(): string[] {
    return this.ignore.ids();
  }

  /** Run the balancer now and stop what it picks (reason "balance"); returns the ids stopped. */
  async balanceNow(): Promise<string[]> {
    if (this.current === "stopping" || this.current === "stopped") return [];
    let ids: unknown;
    try {
      ids = await this.balancer.balance();
    } catch (err) {
      this.log.error(`balancer failed: ${describeError(err)}`);
      return [];
    }
    if (!Array.isArray(ids)) {
      this.log.error(`balancer.balance() must return an array of task ids, got ${typeof ids}`);
      return [];
    }
    const stopped: string[] = [];
    for (const id of ids) {
      if (typeof id !== "string") {
        this.log.warn(`balancer returned a non-string task id ${JSON.stringify(id)}; ignored`);
        continue;
      }
      if (this.stopTask(id, "balance")) stopped.push(id);
    }
    if (stopped.length > 0) this.log.info(`balance: releasing ${stopped.length} task(s): ${stopped.join(", ")}`);
    return stopped;
  }

  /**
   * Ask a running task's handler to stop (every call reaches its onStop listeners; the signal
   * aborts on the first). Returns false (with a warning) when the task is not running here.
   */
  stopTask(id: string, reason: StopReason = "command"): boolean {
    const run = this.running.get(id);
    if (!run) {
      this.log.warn(`stop ${JSON.stringify(id)} (${reason}): not running on this node`);
      return false;
    }
    run.requestStop(reason);
    return true;
  }

  // ---------------------------------------------------------------------------------------
  // Lifecycle

  private async doStart(): Promise<void> {
    try {
      this.balancer.init?.(this.balancerContext);
      await this.coordinator.init(this.coordinatorContext);
    } catch (err) {
      this.log.error(`start failed: ${describeError(err)}`);
      if (this.current === "starting") this.finish({ clean: true, stuck: [] });
      throw err;
    }
    if (this.current === "stopped") {
      // Shutdown gave up waiting for init; the coordinator registered afterwards.
      void this.closeCoordinator();
      return;
    }
    if (this.current === "starting") this.current = "running";
    if (this.current === "running" || this.current === "suspended") {
      this.log.info(`started on ${this.coordinator.name}`);
      this.scheduleBalance();
      this.scheduleDrain();
    }
  }

  private async doShutdown(timeout: number): Promise<ShutdownReport> {
    const previous = this.current;
    this.current = "stopping";
    const forced = new Promise<void>((resolve) => (this.forceShutdown = resolve));
    const timer = deadlineTimer(timeout);
    const giveUp = Promise.race([forced, timer.promise]);
    try {
      if (previous === "new") return this.finish({ clean: true, stuck: [] });
      if (previous === "starting" && this.startPromise) {
        const started = await Promise.race([this.startPromise.then(() => true, () => false), giveUp.then(() => undefined)]);
        if (started === false) return this.finish({ clean: true, stuck: [] });
      }
      this.log.info(`shutting down (${this.running.size} running task(s), timeout ${timeout} ms)`);
      if (this.balanceTimer !== undefined) clearTimeout(this.balanceTimer);
      this.ignore.close();
      this.pending.clear();
      this.held.clear();
      for (const run of this.running.values()) run.requestStop("shutdown");

      await Promise.race([this.whenIdle(() => this.running.size === 0 && this.inFlight.size === 0 && this.finishing.size === 0), giveUp]);
      const stuck = [...this.running.keys()].sort();
      this.gaveUp = true;
      if (stuck.length > 0) {
        this.log.warn(`shutdown gave up waiting for ${stuck.length} handler(s) that did not stop: ${stuck.join(", ")}`);
      }
      await this.closeCoordinator(forced);
      return this.finish({ clean: stuck.length === 0, stuck });
    } finally {
      timer.cancel();
    }
  }

  /** Close the coordinator, never waiting longer than closeTimeout (or past a forced shutdown). */
  private async closeCoordinator(forced?: Promise<void>): Promise<void> {
    const timer = deadlineTimer(this.closeTimeout);
    try {
      const closed = this.coordinator.close().then(
        () => true,
        (err) => {
          this.log.error(`closing ${this.coordinator.name} failed: ${describeError(err)}`);
          return true;
        },
      );
      const waits: Promise<boolean>[] = [closed, timer.promise.then(() => false)];
      if (forced) waits.push(forced.then(() => false));
      if (!(await Promise.race(waits))) this.log.warn(`gave up waiting for ${this.coordinator.name} to close`);
    } catch (err) {
      this.log.error(`closing ${this.coordinator.name} failed: ${describeError(err)}`);
    } finally {
      timer.cancel();
    }
  }

  private finish(report: ShutdownReport): ShutdownReport {
    if (this.finalReport) return this.finalReport;
    this.finalReport = report;
    this.current = "stopped";
    this.gaveUp = true;
    this.ignore.close();
    if (this.balanceTimer !== undefined) clearTimeout(this.balanceTimer);
    this.log.info(report.clean ? "stopped" : `stopped; handlers still running: ${report.stuck.join(", ")}`);
    this.events.emit("stopped", report);
    this.resolveStopped(report);
    return report;
  }

  // ---------------------------------------------------------------------------------------
  // Coordinator callbacks

  private announce(task: Task, rank = 0): void {
    if (this.current === "stopping" || this.current === "stopped") return;
    if (!task || typeof task.id !== "string") {
      this.log.error(`coordinator announced something that is not a task: ${describeError(task)}`);
      return;
    }
    if (this.running.has(task.id) || this.inFlight.has(task.id)) {
      // Reconsidered when the current run or claim attempt ends (see releaseHeld).
      this.held.set(task.id, task);
      return;
    }
    this.pending.put(task, rank);
    this.scheduleDrain();
  }

  private withdraw(taskId: string): void {
    this.pending.delete(taskId);
    this.held.delete(taskId);
    this.ignore.forgetWithdrawn(taskId);
  }

  private lost(taskId: string, reason: "lost" | "deleted"): void {
    const run = this.running.get(taskId);
    if (!run) {
      this.log.debug(`coordinator reports task ${taskId} ${reason}; it is not running here`);
      return;
    }
    run.lostReason ??= reason;
    this.log.warn(reason === "deleted" ? `task ${taskId} was deleted while running; stopping it` : `lost the claim on task ${taskId}; stopping it`);
    run.requestStop(reason);
  }

  private async suspend(deadline: number): Promise<void> {
    if (this.current === "running" || this.current === "starting") {
      this.current = "suspended";
      this.log.warn(`suspended: claims in doubt; stopping ${this.running.size} task(s) by ${new Date(deadline).toISOString()}`);
      this.events.emit("suspended", { deadline });
    }
    for (const run of this.running.values()) run.requestStop("lease");
    const timer = deadlineTimer(Math.max(0, deadline - Date.now()));
    try {
      await Promise.race([this.whenIdle(() => this.running.size === 0 && this.inFlight.size === 0), timer.promise]);
    } finally {
      timer.cancel();
    }
    if (this.running.size > 0) {
      this.log.error(`claim deadline passed with handlers still running: ${[...this.running.keys()].sort().join(", ")}`);
    }
  }

  private resume(): void {
    if (this.current !== "suspended") return;
    this.current = "running";
    this.log.info("resumed: claiming again");
    this.events.emit("resumed", {});
    this.runDueBalance();
    this.scheduleDrain();
  }

  private handleCommand(cmd: NodeCommand): void {
    try {
      if (!cmd || typeof cmd !== "object" || typeof cmd.command !== "string") {
        this.log.error(`dropping malformed node command ${describeError(cmd)}`);
        return;
      }
      this.events.emit("command", { command: cmd });
      if (this.current === "stopping" || this.current === "stopped") {
        this.log.debug(`dropping node command "${cmd.command}": shutting down`);
        return;
      }
      switch (cmd.command) {
        case "freeze":
          this.freeze();
          return;
        case "unfreeze":
          this.unfreeze();
          return;
        case "balance":
          void this.balanceNow();
          return;
        case "stop_task": {
          const id = cmd.parameters?.task;
          if (typeof id !== "string" || id === "") {
            this.log.error(`stop_task command needs a "task" parameter with a task id, got ${JSON.stringify(cmd.parameters ?? null)}; dropped`);
            return;
          }
          this.stopTask(id, "command");
          return;
        }
        default:
          this.log.warn(`unknown node command ${JSON.stringify(cmd.command)}; dropped`);
      }
    } catch (err) {
      this.log.error(`node command failed: ${describeError(err)}`);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Claim loop

  private claimable(): boolean {
    return (
      this.current === "running" &&
      !this.isFrozen &&
      this.pending.size > 0 &&
      this.running.size + this.inFlight.size < this.maxTasks
    );
  }

  private scheduleDrain(): void {
    if (this.drainScheduled || !this.claimable()) return;
    this.drainScheduled = true;
    // Batch a burst of announcements into one drain, after the current turn.
    setImmediate(() => {
      this.drainScheduled = false;
      while (this.workers < this.claimConcurrency && this.claimable()) {
        this.workers++;
        void this.claimWorker().finally(() => {
          this.workers--;
          this.scheduleDrain();
        });
      }
    });
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
      if (this.running.has(id) || this.inFlight.has(id)) {
        this.held.set(id, task);
        continue;
      }
      const route = this.route(task);
      if (!route) {
        this.log.debug(`task ${id}: no handler for it on this node; not claiming`);
        continue;
      }
      this.inFlight.add(id);
      return { task, route };
    }
    return undefined;
  }

  private async attemptClaim(task: Task, route: Route): Promise<void> {
    const id = task.id;
    try {
      let decision: ClaimDecision;
      try {
        decision = await this.balancer.canClaim(task);
      } catch (err) {
        this.log.error(`balancer.canClaim(${id}) failed: ${describeError(err)}`);
        decision = { claim: false, until: Date.now() + RETRY_AFTER_FAILURE_MS };
      }
      if (!decision || !decision.claim) {
        if (decision && decision.until !== undefined) this.ignore.add(task, decision.until, { dropOnWithdraw: true });
        return;
      }
      if (this.current !== "running" || this.isFrozen) {
        this.pending.put(task); // the node stopped claiming while the balancer decided
        return;
      }
      let claim: Claim | undefined;
      this.claiming++;
      try {
        claim = await this.coordinator.claim(task);
      } catch (err) {
        this.log.warn(`claim of ${id} failed: ${describeError(err)}; retrying later`);
        this.ignore.add(task, Date.now() + RETRY_AFTER_FAILURE_MS);
        return;
      } finally {
        this.claiming--;
      }
      if (!claim) {
        this.events.emit("claimMissed", { taskId: id });
        return;
      }
      if (this.current !== "running") {
        // Shutdown or suspension began while claiming: hand it straight back.
        this.log.debug(`claimed ${id} while ${this.current}; releasing it`);
        this.track(this.coordinator.release(task), `release of ${id}`);
        return;
      }
      this.startTask(task, route, claim.token);
    } finally {
      this.inFlight.delete(id);
      if (!this.running.has(id)) this.releaseHeld(id);
      this.checkIdle();
    }
  }

  // ---------------------------------------------------------------------------------------
  // Running tasks

  private startTask(task: Task, route: Route, token: number): void {
    const run = new TaskRun({
      task,
      handler: route.name,
      token,
      node: this.node,
      log: () => scopedLogger(`task ${task.id}`, this.log),
      client: this.coordinator.client,
      claimDeadline: () => this.coordinator.claimDeadline(),
    });
    this.running.set(task.id, run);
    this.log.debug(`claimed ${task.id} (token ${token}, handler ${route.name})`);
    this.events.emit("claimed", { task, token, handler: route.name });
    let result: Promise<HandlerResult>;
    try {
      result = Promise.resolve(route.handler.run(task, run.context));
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (value) => this.taskEnded(run, value, undefined, false),
      (err) => this.taskEnded(run, undefined, err, true),
    );
  }

  private taskEnded(run: TaskRun, value: unknown, error: unknown, threw: boolean): void {
    const id = run.task.id;
    if (this.running.get(id) === run) this.running.delete(id);
    if (this.gaveUp) {
      const outcome = threw ? `threw: ${describeError(error)}` : `returned ${JSON.stringify(value)}`;
      this.log.warn(`handler of ${id} ${outcome} after shutdown gave up on it; ignored`);
      return;
    }
    try {
      this.settleTask(run, value, error, threw);
    } catch (err) {
      this.log.error(`finishing ${id} failed: ${describeError(err)}`);
    }
    this.checkIdle();
    this.scheduleDrain();
  }

  private settleTask(run: TaskRun, value: unknown, error: unknown, threw: boolean): void {
    const { task } = run;
    const id = task.id;
    const elapsed = run.stopped !== undefined ? ` ${Date.now() - run.stopped} ms after stop (${run.stopReason})` : "";
    if (threw) {
      const failures = (this.failures.get(id) ?? 0) + 1;
      this.failures.set(id, failures);
      const delay = Math.min(this.backoff.initial * 2 ** (failures - 1), this.backoff.max);
      this.log.error(`handler of ${id} failed (failure ${failures}; not retrying here for ${delay} ms): ${describeError(error)}`);
      this.events.emit("handlerError", { taskId: id, error });
      // Ignore before releasing: the release re-announces the task to this node too.
      if (!run.lostReason) this.ignore.add(task, Date.now() + delay);
    } else {
      this.failures.delete(id);
    }

    if (run.lostReason) {
      this.log.info(`task ${id} stopped${elapsed}; its claim was ${run.lostReason === "deleted" ? "deleted" : "lost"}, so neither released nor done`);
      this.events.emit("lost", { taskId: id, reason: run.lostReason });
      this.releaseHeld(id);
      return;
    }

    let outcome: HandlerResult = "release";
    if (!threw) {
      if (value === "done" || value === "release") outcome = value;
      else this.log.warn(`handler of ${id} returned ${JSON.stringify(value)}; expected "done" or "release"; releasing`);
    }
    if (outcome === "done") {
      this.held.delete(id);
      this.track(
        this.coordinator.done(task).then(() => {
          this.log.debug(`task ${id} done${elapsed}`);
          this.events.emit("done", { taskId: id });
        }),
        `done of ${id}`,
      );
      return;
    }
    this.track(
      this.coordinator.release(task).then(() => {
        this.log.debug(`task ${id} released${elapsed}`);
        const payload: ConsumerEvents["released"] = { taskId: id };
        if (run.stopReason !== undefined) payload.reason = run.stopReason;
        if (threw) payload.error = error;
        this.events.emit("released", payload);
        this.releaseHeld(id);
      }),
      `release of ${id}`,
    );
  }

  /** Hand an announcement that arrived while the task was busy here back to the claim loop. */
  private releaseHeld(id: string): void {
    const task = this.held.get(id);
    if (!task) return;
    this.held.delete(id);
    this.announce(task);
  }

  /** Keep a release/done call in `finishing` until it settles; log its failure. */
  private track(op: Promise<void>, what: string): void {
    const p: Promise<void> = op
      .catch((err) => this.log.error(`${what} failed: ${describeError(err)}`))
      .finally(() => {
        this.finishing.delete(p);
        this.checkIdle();
        this.scheduleDrain();
      });
    this.finishing.add(p);
  }

  private whenIdle(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!condition()) return;
        this.idleWaiters.delete(check);
        resolve();
      };
      this.idleWaiters.add(check);
    });
  }

  private checkIdle(): void {
    for (const check of [...this.idleWaiters]) check();
  }

  // ---------------------------------------------------------------------------------------
  // Periodic balance

  private scheduleBalance(): void {
    if (this.current === "stopping" || this.current === "stopped") return;
    if (!Number.isFinite(this.balanceEvery)) return;
    const delay = Math.min(this.balanceEvery + Math.random() * this.balanceJitter, MAX_TIMER_DELAY);
    this.balanceTimer = setTimeout(() => {
      this.balanceTimer = undefined;
      this.balanceDue = true;
      this.runDueBalance();
    }, delay);
  }

  /** Cycles are sequential; a tick that falls while frozen or suspended runs when that ends. */
  private runDueBalance(): void {
    if (!this.balanceDue || this.isFrozen || this.current !== "running") return;
    this.balanceDue = false;
    void this.balanceNow().finally(() => this.scheduleBalance());
  }
}

function buildRouter(opts: ConsumerOptions): (task: Task) => Route | undefined {
  if (opts.handler && opts.handlers) {
    throw new ConfigError(`Consumer takes either "handler" (one handler for every task) or "handlers" (routed by name), not both`);
  }
  if (opts.handler) {
    checkHandler(opts.handler, `option "handler"`);
    const route: Route = { name: opts.handler.name ?? "default", handler: opts.handler };
    return () => route;
  }
  if (!opts.handlers) throw new ConfigError(`Consumer needs a "handler" or a "handlers" map`);
  const entries = opts.handlers instanceof Map ? [...opts.handlers] : Object.entries(opts.handlers);
  const routes = new Map<string, Route>();
  for (const [name, handler] of entries) {
    checkHandler(handler, `handler "${name}"`);
    routes.set(name, { name, handler });
  }
  return (task) => routes.get(routeTask(task));
}

function checkHandler(handler: Handler, what: string): void {
  if (!handler || typeof handler.run !== "function") {
    throw new ConfigError(`${what} must be an object with a run(task, ctx) method`);
  }
}

function nonNegative(name: string, value: number | undefined, fallback: number, allowInfinity: boolean): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || (!allowInfinity && !Number.isFinite(value))) {
    throw new ConfigError(`Consumer option "${name}" must be a number of ms >= 0${allowInfinity ? " (or Infinity)" : ""}, got ${String(value)}`);
  }
  return value;
}

/** A cancellable timer as a promise, so races never leave timers keeping the process alive. */
function deadlineTimer(ms: number): { promise: Promise<void>; cancel(): void } {
  let handle: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((resolve) => {
    handle = setTimeout(resolve, Math.min(ms, MAX_TIMER_DELAY));
  });
  return { promise, cancel: () => clearTimeout(handle) };
}
