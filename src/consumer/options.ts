/**
 * The Consumer's options: what they mean, their defaults, and the checks that turn a bad value
 * into a ConfigError naming the option (before anything starts). Also the handler router,
 * which picks the handler for a task from "handler" or "handlers".
 */
import { FairBalancer } from "../balancers/fair.ts";
import type { RebalanceOptions } from "../balancers/membership.ts";
import { ConfigError } from "../errors.ts";
import { routeTask } from "../handler.ts";
import { invalidNameReason } from "../ids.ts";
import { scopedLogger } from "../log.ts";
import type { Balancer, Coordinator, Handler, Logger, Task } from "../types.ts";
import { DEFAULT_RELEASE_PACING, ReleasePacer, type ReleasePacingOptions } from "./release-pacing.ts";

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
  /**
   * Membership-driven rebalancing (see balancers/membership.ts): when nodes join, leave or
   * return, and on a drift check, hand back paced excess via balancer.rebalance(). false
   * disables it; the periodic balance is unaffected.
   */
  rebalance?: RebalanceOptions | false;
  /** At most this many running tasks (default Infinity); a full node never claims. */
  maxTasks?: number;
  /** After a handler throws, this node ignores the task for initial × 2^(failures−1) ms, capped at max. */
  errorBackoff?: { initial: number; max: number };
  /**
   * A task the handler hands back (returns "release", or an invalid result) within `within` ms
   * of its claim is ignored on this node for initial × 2^(k−1) ms (k-th time in a row), capped
   * at max, so no handler result can make a node spin. Default { within: 1 s, initial: 1 s,
   * max: 1 min }; within 0 disables it.
   */
  releasePacing?: Partial<ReleasePacingOptions>;
  /** Claims attempted concurrently (default 1). More helps high-latency coordinators. */
  claimConcurrency?: number;
  /** How long shutdown waits for coordinator.close(), ms (default 10 s). */
  closeTimeout?: number;
  log?: Logger;
}

const DEFAULT_BALANCE_EVERY = 5 * 60_000;
const DEFAULT_BALANCE_JITTER = 10_000;
const DEFAULT_CLOSE_TIMEOUT = 10_000;
const DEFAULT_ERROR_BACKOFF = { initial: 1_000, max: 5 * 60_000 };
export const DEFAULT_SHUTDOWN_TIMEOUT = 30_000;

/** The handler a task goes to, and the name it is known by (logs, events, metrics). */
export interface Route {
  readonly name: string;
  readonly handler: Handler;
}

/** ConsumerOptions checked and with every default filled in. */
export interface ResolvedOptions {
  readonly node: string;
  readonly coordinator: Coordinator;
  readonly log: Logger;
  /** The handler for a task; undefined when this node has none for it (never claimed here). */
  readonly route: (task: Task) => Route | undefined;
  readonly balancer: Balancer;
  readonly balanceEvery: number;
  readonly balanceJitter: number;
  readonly maxTasks: number;
  readonly backoff: { initial: number; max: number };
  readonly pacing: ReleasePacingOptions;
  readonly claimConcurrency: number;
  readonly closeTimeout: number;
}

/** Check every option (in a fixed order, so the first problem is the one reported) and fill in defaults. */
export function resolveOptions(opts: ConsumerOptions): ResolvedOptions {
  if (!opts || typeof opts !== "object") throw new ConfigError("Consumer options must be an object");
  const badNode = invalidNameReason("node name", opts.node, 'Consumer option "node"');
  if (badNode) throw new ConfigError(badNode);
  if (!opts.coordinator || typeof opts.coordinator.init !== "function") {
    throw new ConfigError(
      `Consumer option "coordinator" must be a Coordinator (an object with init, claim, release, done, close)`,
    );
  }
  const log = opts.log ?? scopedLogger(`node ${opts.node}`);
  const route = buildRouter(opts);
  const balancer = opts.balancer ?? new FairBalancer();
  if (typeof balancer.canClaim !== "function" || typeof balancer.balance !== "function") {
    throw new ConfigError(`Consumer option "balancer" must have canClaim(task) and balance() methods`);
  }
  const balanceEvery = nonNegative("balanceEvery", opts.balanceEvery, DEFAULT_BALANCE_EVERY, true);
  const balanceJitter = nonNegative("balanceJitter", opts.balanceJitter, DEFAULT_BALANCE_JITTER, false);
  const maxTasks = opts.maxTasks ?? Infinity;
  if (!(maxTasks === Infinity || (Number.isInteger(maxTasks) && maxTasks >= 1))) {
    throw new ConfigError(
      `Consumer option "maxTasks" must be an integer >= 1 or Infinity, got ${String(opts.maxTasks)}`,
    );
  }
  const backoff = opts.errorBackoff ?? DEFAULT_ERROR_BACKOFF;
  if (!backoff || !(backoff.initial >= 0) || !(backoff.max >= backoff.initial) || !Number.isFinite(backoff.max)) {
    throw new ConfigError(
      `Consumer option "errorBackoff" must be { initial, max } ms with 0 <= initial <= max, got ${JSON.stringify(opts.errorBackoff)}`,
    );
  }
  const pacing = { ...DEFAULT_RELEASE_PACING, ...(opts.releasePacing ?? {}) };
  const pacingProblem = ReleasePacer.problem(pacing);
  if (pacingProblem) throw new ConfigError(`Consumer option "releasePacing": ${pacingProblem}`);
  const claimConcurrency = opts.claimConcurrency ?? 1;
  if (!Number.isInteger(claimConcurrency) || claimConcurrency < 1) {
    throw new ConfigError(
      `Consumer option "claimConcurrency" must be an integer >= 1, got ${String(opts.claimConcurrency)}`,
    );
  }
  const closeTimeout = nonNegative("closeTimeout", opts.closeTimeout, DEFAULT_CLOSE_TIMEOUT, false);
  return {
    node: opts.node,
    coordinator: opts.coordinator,
    log,
    route,
    balancer,
    balanceEvery,
    balanceJitter,
    maxTasks,
    backoff: { initial: backoff.initial, max: backoff.max },
    pacing,
    claimConcurrency,
    closeTimeout,
  };
}

function buildRouter(opts: ConsumerOptions): (task: Task) => Route | undefined {
  if (opts.handler && opts.handlers) {
    throw new ConfigError(
      `Consumer takes either "handler" (one handler for every task) or "handlers" (routed by name), not both`,
    );
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
    throw new ConfigError(
      `Consumer option "${name}" must be a number of ms >= 0${allowInfinity ? " (or Infinity)" : ""}, got ${String(value)}`,
    );
  }
  return value;
}
