/**
 * Membership-driven rebalancing: the part of elasticity that does not wait for the periodic
 * balance. It watches the cluster view's node set (ClusterState.onChange) and, after a quiet
 * period plus jitter (so nodes do not act in lockstep), asks the balancer's `rebalance()` what
 * to hand back. A drift check does the same every `driftEvery` ms, so a spread that drifts
 * (or a view without onChange) is corrected too.
 *
 * Releases are paced: the excess is stopped in `steps` slices spread over `window` ms, and the
 * balancer is asked again before each slice, so a view that changes meanwhile (another node
 * left, the joiner filled up) never makes this node release more than is still in excess.
 * Each rebalance that released something is reported once (one log line, one event).
 */
import { ConfigError, describeError } from "../errors.ts";
import { MAX_TIMER_DELAY } from "../internal/timers.ts";
import type { Balancer, ClusterState, Logger, RebalanceTrigger } from "../types.ts";
import { shareOf } from "./fair.ts";

export interface RebalanceOptions {
  /** React to membership changes and drift at all. Default true. */
  enabled?: boolean;
  /** Quiet time after the last change of the node set before acting, ms. Default 500. */
  debounce?: number;
  /** Extra uniform random delay in [0, jitter) ms before each rebalance. Default 1000. */
  jitter?: number;
  /** Drift check every this many ms (plus jitter); Infinity disables it. Default 5000. */
  driftEvery?: number;
  /** The releases of one rebalance are spread over this many ms. Default 2000. */
  window?: number;
  /** ... in at most this many slices. Default 5. */
  steps?: number;
}

export const REBALANCE_DEFAULTS = { debounce: 500, jitter: 1000, driftEvery: 5000, window: 2000, steps: 5 } as const;

/** One finished rebalance that released something. */
export interface RebalanceReport {
  readonly trigger: RebalanceTrigger;
  /** Ids this node stopped so that they are released. */
  readonly released: readonly string[];
  /** Tasks this node ran when the rebalance began. */
  readonly before: number;
}

/** What the rebalancer needs from its consumer. */
export interface RebalanceHost {
  readonly node: string;
  readonly balancer: Balancer;
  readonly log: Logger;
  cluster(): ClusterState;
  /** True while rebalancing makes sense (running, not frozen, not suspended). */
  active(): boolean;
  /** Running tasks (stopping ones included). */
  taskCount(): number;
  /** Ask these running tasks to stop for a rebalance; returns those actually stopped. */
  stop(ids: readonly string[]): string[];
  report(report: RebalanceReport): void;
  random?: () => number;
}

type Resolved = Required<Omit<RebalanceOptions, "enabled">> & { enabled: boolean };

export function resolveRebalanceOptions(opts: RebalanceOptions | false | undefined): Resolved {
  if (opts === false) return { ...REBALANCE_DEFAULTS, enabled: false };
  const o = opts ?? {};
  if (typeof o !== "object")
    throw new ConfigError(`Consumer option "rebalance" must be an object or false, got ${typeof o}`);
  const ms = (name: keyof typeof REBALANCE_DEFAULTS, infinite: boolean): number => {
    const v = o[name] ?? REBALANCE_DEFAULTS[name];
    if (typeof v !== "number" || Number.isNaN(v) || v < 0 || (!infinite && !Number.isFinite(v))) {
      throw new ConfigError(
        `rebalance option "${name}" must be a number of ms >= 0${infinite ? " (or Infinity)" : ""}, got ${String(o[name])}`,
      );
    }
    return v;
  };
  const steps = o.steps ?? REBALANCE_DEFAULTS.steps;
  if (!Number.isInteger(steps) || steps < 1)
    throw new ConfigError(`rebalance option "steps" must be an integer >= 1, got ${String(o.steps)}`);
  return {
    enabled: o.enabled ?? true,
    debounce: ms("debounce", false),
    jitter: ms("jitter", false),
    driftEvery: ms("driftEvery", true),
    window: ms("window", false),
    steps,
  };
}

export class MembershipRebalancer {
  private readonly opts: Resolved;
  private readonly random: () => number;
  /** Live nodes as of the last look, and every node ever seen (to tell a return from a join). */
  private known = new Set<string>();
  private readonly seen = new Set<string>();
  private readonly joined = new Set<string>();
  private readonly returned = new Set<string>();
  private readonly left = new Set<string>();
  private changeTimer: ReturnType<typeof setTimeout> | undefined;
  private driftTimer: ReturnType<typeof setTimeout> | undefined;
  private stepTimer: { handle: ReturnType<typeof setTimeout>; resolve: () => void } | undefined;
  private unsubscribe: (() => void) | undefined;
  private running = false;
  private queued: RebalanceTrigger | undefined;
  private closed = false;

  constructor(
    private readonly host: RebalanceHost,
    opts: RebalanceOptions | false | undefined,
  ) {
    this.opts = resolveRebalanceOptions(opts);
    this.random = host.random ?? Math.random;
  }

  /** Start watching (after the coordinator's init: its view is then populated). */
  start(): void {
    if (!this.opts.enabled || this.closed) return;
    const cluster = this.host.cluster();
    this.known = this.liveNodes(cluster);
    for (const n of this.known) this.seen.add(n);
    this.unsubscribe = cluster.onChange?.(() => this.viewChanged());
    this.scheduleDrift();
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearTimeout(this.changeTimer);
    clearTimeout(this.driftTimer);
    const step = this.stepTimer;
    if (step) {
      clearTimeout(step.handle);
      step.resolve();
    }
  }

  /** Run one rebalance now (or right after the one in progress). Resolves when it is over. */
  async run(trigger: RebalanceTrigger): Promise<string[]> {
    if (this.closed || !this.host.active()) return [];
    if (this.running) {
      this.queued = trigger;
      return [];
    }
    this.running = true;
    try {
      return await this.paced(trigger);
    } finally {
      this.running = false;
      const next = this.queued;
      this.queued = undefined;
      if (next && !this.closed) void this.run(next);
    }
  }

  private liveNodes(cluster: ClusterState): Set<string> {
    const names = new Set(cluster.nodeTaskCounts().keys());
    names.add(this.host.node);
    return names;
  }

  private viewChanged(): void {
    if (this.closed) return;
    let now: Set<string>;
    try {
      now = this.liveNodes(this.host.cluster());
    } catch (err) {
      this.host.log.warn(`rebalance: reading the cluster view failed: ${describeError(err)}`);
      return;
    }
    let changed = false;
    for (const n of now) {
      if (this.known.has(n)) continue;
      changed = true;
      this.left.delete(n);
      (this.seen.has(n) ? this.returned : this.joined).add(n);
      this.seen.add(n);
    }
    for (const n of this.known) {
      if (now.has(n)) continue;
      changed = true;
      this.joined.delete(n);
      this.returned.delete(n);
      this.left.add(n);
    }
    this.known = now;
    if (!changed) return;
    // Debounce: act once the node set has been quiet for `debounce` ms, plus jitter.
    clearTimeout(this.changeTimer);
    const delay = this.opts.debounce + this.random() * this.opts.jitter;
    this.changeTimer = setTimeout(
      () => {
        this.changeTimer = undefined;
        const trigger = this.takeMembershipTrigger();
        if (trigger) void this.run(trigger);
      },
      Math.min(delay, MAX_TIMER_DELAY),
    );
  }

  /** The accumulated changes as one trigger: joins first, then returns, then departures. */
  private takeMembershipTrigger(): RebalanceTrigger | undefined {
    const pick = (kind: "join" | "return" | "leave", set: Set<string>): RebalanceTrigger | undefined =>
      set.size > 0 ? { kind, nodes: [...set].sort() } : undefined;
    const trigger = pick("join", this.joined) ?? pick("return", this.returned) ?? pick("leave", this.left);
    // A join and a return at once are one rebalance; its trigger names the joins.
    this.joined.clear();
    this.returned.clear();
    this.left.clear();
    return trigger;
  }

  private scheduleDrift(): void {
    if (this.closed || !Number.isFinite(this.opts.driftEvery)) return;
    const delay = this.opts.driftEvery + this.random() * this.opts.jitter;
    this.driftTimer = setTimeout(
      () => {
        this.driftTimer = undefined;
        void this.run({ kind: "drift" }).finally(() => this.scheduleDrift());
      },
      Math.min(delay, MAX_TIMER_DELAY),
    );
  }

  private async ask(trigger: RebalanceTrigger, step: number): Promise<string[]> {
    const rebalance = this.host.balancer.rebalance;
    if (typeof rebalance !== "function") return [];
    let ids: unknown;
    try {
      ids = await rebalance.call(this.host.balancer, trigger, { step });
    } catch (err) {
      this.host.log.error(`balancer.rebalance() failed: ${describeError(err)}`);
      return [];
    }
    if (!Array.isArray(ids)) {
      this.host.log.error(`balancer.rebalance() must return an array of task ids, got ${typeof ids}`);
      return [];
    }
    return ids.filter((id): id is string => typeof id === "string");
  }

  private async paced(trigger: RebalanceTrigger): Promise<string[]> {
    const before = this.host.taskCount();
    const first = await this.ask(trigger, 0);
    if (first.length === 0) {
      if (trigger.kind !== "drift")
        this.host.log.debug(`rebalance (${describeTrigger(trigger)}): within the fair share, nothing to release`);
      return [];
    }
    const steps = Math.min(this.opts.steps, first.length);
    const perStep = Math.ceil(first.length / steps);
    const interval = steps > 1 ? this.opts.window / (steps - 1) : 0;
    const released: string[] = [];
    let batch = first;
    for (let step = 0; step < steps && !this.closed; step++) {
      if (step > 0) {
        await this.wait(interval);
        if (this.closed || !this.host.active()) break;
        // Ask again: the view moves while we pace (others release, the joiner fills up).
        batch = await this.ask(trigger, step);
        if (batch.length === 0) break;
      }
      const room = first.length - released.length;
      released.push(...this.host.stop(batch.slice(0, Math.min(perStep, room))));
      if (released.length >= first.length) break;
    }
    if (released.length > 0) this.host.report({ trigger, released, before });
    return released;
  }

  private wait(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const handle = setTimeout(
        () => {
          this.stepTimer = undefined;
          resolve();
        },
        Math.min(ms, MAX_TIMER_DELAY),
      );
      this.stepTimer = { handle, resolve };
    });
  }
}

/** "join of node n4", "return of nodes a, b", "drift", "periodic", "command". */
export function describeTrigger(trigger: RebalanceTrigger): string {
  if (!("nodes" in trigger)) return trigger.kind;
  const nodes = trigger.nodes;
  return `${trigger.kind} of node${nodes.length === 1 ? "" : "s"} ${nodes.join(", ")}`;
}

/**
 * The one log line per rebalance: who released how many, why, and where that leaves the node
 * against its fair share, e.g. "rebalance (join of node n4): n1 releases 25 of 100 task(s);
 * fair share 75.0, keeps 75".
 */
export function rebalanceLogLine(node: string, report: RebalanceReport, cluster: ClusterState): string {
  let share = "";
  try {
    const view = shareOf(cluster, node);
    share = `; fair share ${view.share.toFixed(1)} over ${view.nodes} node(s), keeps ${report.before - report.released.length}`;
  } catch {
    // the view is informational here
  }
  const n = report.released.length;
  const list = n <= 10 ? `: ${report.released.join(", ")}` : "";
  return `rebalance (${describeTrigger(report.trigger)}): ${node} releases ${n} of ${report.before} task(s)${share}${list}`;
}
