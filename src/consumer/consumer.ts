/**
 * The Consumer: one node's worker loop (Go Metafora's, redesigned for an event loop).
 *
 * This file is the node API, the lifecycle (start, suspend/resume, bounded shutdown) and the
 * wiring of the parts, each in its own file:
 *   - options.ts: the options, their defaults and checks, and the handler router;
 *   - claim-loop.ts: announcements drained into claims (asking the balancer, then the
 *     coordinator) without blocking the event loop; it owns every task on its way to a claim;
 *   - running-tasks.ts: each won claim runs its handler with an AbortSignal (task-run.ts);
 *   - settle.ts: a handler's result or throw becomes done, release or release plus back-off;
 *   - balancing.ts: the periodic, commanded and membership-driven balance;
 *   - node-commands.ts: freeze, unfreeze, balance and stop_task sent to this node.
 */
import { ConfigError, describeError } from "../errors.ts";
import { Emitter } from "../events.ts";
import { deadlineTimer } from "../internal/timers.ts";
import { scopedLogger } from "../log.ts";
import type {
  Balancer,
  BalancerContext,
  Coordinator,
  CoordinatorContext,
  Logger,
  RunningTask,
  ShutdownReport,
  StopReason,
} from "../types.ts";
import { Balancing } from "./balancing.ts";
import { ClaimLoop } from "./claim-loop.ts";
import type { ConsumerEvents, ConsumerState } from "./events.ts";
import { type CommandTarget, dispatchNodeCommand } from "./node-commands.ts";
import { type ConsumerOptions, DEFAULT_SHUTDOWN_TIMEOUT, resolveOptions } from "./options.ts";
import { RunningTasks } from "./running-tasks.ts";
import { Settlement } from "./settle.ts";

export type { ConsumerEvents, ConsumerState } from "./events.ts";
export type { ConsumerOptions } from "./options.ts";

export class Consumer {
  readonly node: string;
  private readonly coordinator: Coordinator;
  private readonly balancer: Balancer;
  private readonly log: Logger;
  private readonly closeTimeout: number;
  private readonly events: Emitter<ConsumerEvents>;

  private current: ConsumerState = "new";
  private isFrozen = false;
  /** Handlers that have not returned yet. */
  private readonly running: RunningTasks;
  /** Everything on its way to a claim here: pending, in flight, held, ignored. */
  private readonly claims: ClaimLoop;
  /** What happens after a handler returns or throws, and the release/done calls it makes. */
  private readonly settlement: Settlement;
  private readonly idleWaiters = new Set<() => void>();

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
  /** The periodic and membership-driven balance. */
  private readonly balancing: Balancing;

  constructor(opts: ConsumerOptions) {
    const options = resolveOptions(opts);
    this.node = options.node;
    this.coordinator = options.coordinator;
    this.log = options.log;
    this.balancer = options.balancer;
    this.closeTimeout = options.closeTimeout;
    this.events = new Emitter<ConsumerEvents>(this.log);
    this.running = new RunningTasks({
      node: this.node,
      log: this.log,
      coordinator: this.coordinator,
      events: this.events,
      ended: (run, value, error, threw) => this.settlement.ended(run, value, error, threw),
    });
    this.claims = new ClaimLoop({
      log: this.log,
      balancer: this.balancer,
      coordinator: this.coordinator,
      route: options.route,
      maxTasks: options.maxTasks,
      claimConcurrency: options.claimConcurrency,
      state: () => this.current,
      frozen: () => this.isFrozen,
      isRunning: (taskId) => this.running.has(taskId),
      runningCount: () => this.running.size,
      claimed: (task, route, claim) => this.running.start(task, route, claim),
      handBack: (task) => this.settlement.handBack(task),
      claimMissed: (taskId) => this.events.emit("claimMissed", { taskId }),
      ignoreEnded: (taskId) => this.settlement.backoffEnded(taskId),
      checkIdle: () => this.checkIdle(),
    });
    this.settlement = new Settlement({
      log: this.log,
      coordinator: this.coordinator,
      events: this.events,
      claims: this.claims,
      backoff: options.backoff,
      pacing: options.pacing,
      state: () => this.current,
      gaveUp: () => this.gaveUp,
      checkIdle: () => this.checkIdle(),
    });
    this.stoppedPromise = new Promise((resolve) => (this.resolveStopped = resolve));

    const self = this;
    const commands: CommandTarget = {
      log: this.log,
      state: () => this.current,
      received: (command) => this.events.emit("command", { command }),
      freeze: () => this.freeze(),
      unfreeze: () => this.unfreeze(),
      balanceNow: (why) => this.balanceNow(why),
      stopTask: (id, reason) => this.stopTask(id, reason),
    };
    this.balancerContext = {
      node: this.node,
      tasks: () => this.tasks(),
      taskCount: () => this.running.size + this.claims.claiming,
      get cluster() {
        return self.coordinator.cluster;
      },
    };
    this.coordinatorContext = {
      node: this.node,
      log: scopedLogger(this.coordinator.name, opts.log),
      announce: (task, rank) => this.claims.announce(task, rank),
      withdraw: (taskId) => this.claims.withdraw(taskId),
      pendingClaims: () => this.claims.pendingCount,
      command: (cmd) => dispatchNodeCommand(commands, cmd),
      lost: (taskId, reason) => this.running.lost(taskId, reason),
      suspend: (deadline) => this.suspend(deadline),
      resume: () => this.resume(),
    };
    this.balancing = new Balancing({
      node: this.node,
      log: this.log,
      balancer: this.balancer,
      coordinator: this.coordinator,
      events: this.events,
      balanceEvery: options.balanceEvery,
      balanceJitter: options.balanceJitter,
      rebalance: opts.rebalance,
      state: () => this.current,
      frozen: () => this.isFrozen,
      runningCount: () => this.running.size,
      stopping: (taskId) => this.running.stopping(taskId),
      stopTask: (taskId) => this.stopTask(taskId, "balance"),
    });
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
      return Promise.reject(
        new Error(`consumer "${this.node}" is ${this.current}; a consumer cannot be restarted, create a new one`),
      );
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
    if (!(timeout >= 0))
      return Promise.reject(
        new ConfigError(`shutdown timeout must be a number of ms >= 0, got ${String(opts.timeout)}`),
      );
    this.shutdownPromise = this.doShutdown(timeout);
    return this.shutdownPromise;
  }

  /** Running tasks, sorted by id. */
  tasks(): RunningTask[] {
    return this.running.views();
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
    this.balancing.runDue();
    this.claims.scheduleDrain();
  }

  /** Ids this node currently ignores (back-off or balancer deferral), in no particular order. */
  ignores(): string[] {
    return this.claims.ignore.ids();
  }

  /** Run the balancer now and stop what it picks (reason "balance"); returns the ids stopped. */
  balanceNow(why: "command" | "periodic" = "command"): Promise<string[]> {
    return this.balancing.balanceNow(why);
  }

  /**
   * Ask a running task's handler to stop (every call reaches its onStop listeners; the signal
   * aborts on the first). Returns false (with a warning) when the task is not running here.
   */
  stopTask(id: string, reason: StopReason = "command"): boolean {
    return this.running.stop(id, reason);
  }

  // ---------------------------------------------------------------------------------------
  // Lifecycle

  private async doStart(): Promise<void> {
    try {
      this.balancer.init?.(this.balancerContext);
      await this.coordinator.init(this.coordinatorContext);
    } catch (err) {
      // start() rejects with this error, so the caller reports it; here it is for debugging.
      this.log.debug(`start failed: ${describeError(err)}`);
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
      this.balancing.start();
      this.claims.scheduleDrain();
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
        const started = await Promise.race([
          this.startPromise.then(
            () => true,
            () => false,
          ),
          giveUp.then(() => undefined),
        ]);
        if (started === false) return this.finish({ clean: true, stuck: [] });
      }
      this.log.info(`shutting down (${this.running.size} running task(s), timeout ${timeout} ms)`);
      this.balancing.close();
      this.claims.ignore.close();
      this.claims.clear();
      try {
        this.coordinator.leaving?.();
      } catch (err) {
        this.log.error(`${this.coordinator.name}: leaving() failed: ${describeError(err)}`);
      }
      this.running.stopAll("shutdown");

      await Promise.race([
        this.whenIdle(
          () => this.running.size === 0 && this.claims.attempting === 0 && this.settlement.finishingCount === 0,
        ),
        giveUp,
      ]);
      const stuck = this.running.ids();
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
    const unreleased = this.settlement.unreleased();
    if (unreleased.length > 0) report = { ...report, unreleased };
    this.finalReport = report;
    this.current = "stopped";
    this.gaveUp = true;
    this.claims.ignore.close();
    this.balancing.close();
    this.log.info(report.clean ? "stopped" : `stopped; handlers still running: ${report.stuck.join(", ")}`);
    this.events.emit("stopped", report);
    this.resolveStopped(report);
    return report;
  }

  // ---------------------------------------------------------------------------------------
  // Coordinator callbacks (announce and withdraw go to the claim loop, lost to the running tasks)

  private async suspend(deadline: number): Promise<void> {
    if (this.current === "running" || this.current === "starting") {
      this.current = "suspended";
      this.log.warn(
        `suspended: claims in doubt; stopping ${this.running.size} task(s) by ${new Date(deadline).toISOString()}`,
      );
      this.events.emit("suspended", { deadline });
    }
    this.running.stopAll("lease");
    // On the monotonic clock when the coordinator has one (a wall-clock step must not shorten it).
    const coordinator = this.coordinator;
    const monotonic = coordinator.claimDeadlineMonotonic?.();
    const remaining =
      monotonic !== undefined && Number.isFinite(monotonic) ? monotonic - performance.now() : deadline - Date.now();
    const timer = deadlineTimer(Math.max(0, remaining));
    try {
      await Promise.race([this.whenIdle(() => this.running.size === 0 && this.claims.attempting === 0), timer.promise]);
    } finally {
      timer.cancel();
    }
    if (this.running.size > 0) {
      this.log.error(`claim deadline passed with handlers still running: ${this.running.ids().join(", ")}`);
    }
  }

  private resume(): void {
    if (this.current !== "suspended") return;
    this.current = "running";
    this.log.info("resumed: claiming again");
    this.events.emit("resumed", {});
    this.balancing.runDue();
    this.claims.scheduleDrain();
  }

  /** When this node's back-off from `id` (handler error or quick release) ends, if it is backing off. */
  ignoredUntil(id: string): number | undefined {
    return this.settlement.ignoredUntil(id);
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
}
