/**
 * Prometheus metrics of a metafora node (prom-client), on a registry of their own so an
 * embedding program's global registry is never touched and tests can create many.
 *
 * Every metafora metric is prefixed `metafora_`. prom-client's default process/runtime
 * metrics are added unprefixed (`process_*`, `nodejs_*`, including
 * `nodejs_eventloop_lag_*`, which works on Bun) so standard dashboards keep working.
 * Because Deno's monitorEventLoopDelay reports nothing useful, we also measure event-loop lag
 * ourselves (timer drift) into `metafora_event_loop_lag_seconds`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { shareOf } from "../../balancers/fair.ts";
import type { Consumer, ConsumerEvents } from "../../consumer/consumer.ts";
import { STATE_CODES } from "../../statemachine/types.ts";
import type { ClusterState, RunningTask, StopReason } from "../../types.ts";
import { LoopLagMonitor } from "../../internal/loop-lag.ts";
import { FailoverEstimator } from "./failover.ts";

export interface MetricsOptions {
  /** Added as a `node` label to every series (useful when several nodes share a host). */
  node?: string;
  /** Add prom-client's default process and runtime metrics (default true). */
  defaultMetrics?: boolean;
  /**
   * Sample event-loop lag by timer drift every N ms into metafora_event_loop_lag_seconds
   * (default 1000). Pass false when the coordinator's own lag measurements are fed through
   * observeLoopLag instead, so one stall is not counted twice.
   */
  loopLagSampleEvery?: number | false;
}

export interface Metrics {
  readonly registry: Registry;
  /** Content-Type of `text()`. */
  readonly contentType: string;
  /** Prometheus text exposition of everything in the registry. */
  text(): Promise<string>;
  readonly tasksRunning: Gauge<"handler">;
  readonly claimsWon: Counter<"handler">;
  readonly claimsMissed: Counter;
  readonly releases: Counter<"handler" | "reason">;
  readonly done: Counter<"handler">;
  readonly claimsLost: Counter<"handler" | "reason">;
  readonly handlerErrors: Counter<"handler">;
  readonly releaseBackoffs: Counter<"handler">;
  readonly failovers: Counter;
  readonly suspensions: Counter;
  readonly keepaliveLatency: Histogram;
  readonly loopLag: Histogram;
  readonly frozen: Gauge;
  /** Tasks stopped by rebalances, by trigger: join, return, leave, drift, periodic, command. */
  readonly rebalanceReleases: Counter<"trigger">;
  readonly fairShare: Gauge;
  readonly fairShareDistance: Gauge;
  readonly statefulTasks: Gauge<"state">;
  /** A lease keepalive round trip took `ms` (wired to the etcd coordinator's hook). */
  observeKeepalive(ms: number): void;
  /** The event loop was `ms` late (wired to the coordinator's lag measurement, if any). */
  observeLoopLag(ms: number): void;
  /** Stop the lag sampler and detach from any consumer. Metrics stay readable. */
  close(): void;
}

/** What metrics need from a consumer: its events, running tasks and frozen flag. */
export type MetricsConsumer = Pick<Consumer, "on" | "tasks" | "frozen">;

export interface AttachOptions {
  /** The coordinator's live cluster view: enables the failover estimate (failover.ts). */
  cluster?: ClusterState;
  /** This node's name (never counted as a vanished node). */
  node?: string;
  /** State of a running stateful task (services.stateOf), for metafora_stateful_tasks. */
  stateOf?(taskId: string): { state: { code: string } } | undefined;
  /** Failover window in ms (default 60 s). */
  failoverWindow?: number;
  /** How often the cluster view is sampled for vanished nodes (ms, default 250; reading it is cheap). */
  failoverSampleEvery?: number;
}

interface MetricsInternals extends Metrics {
  /** Collect hooks installed by attachConsumerMetrics. */
  sources: {
    tasks?: () => RunningTask[];
    frozen?: () => boolean;
    stateOf?: AttachOptions["stateOf"];
    share?: () => { share: number; local: number } | undefined;
  };
  cleanups: Array<() => void>;
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (opts.node) registry.setDefaultLabels({ node: opts.node });
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const sources: MetricsInternals["sources"] = {};

  const tasksRunning = new Gauge({
    name: "metafora_tasks_running",
    help: "Tasks running on this node, by handler.",
    labelNames: ["handler"] as const,
    registers,
    collect() {
      // Counted from the consumer at scrape time: always exact, no drift from missed events.
      this.reset();
      const list = sources.tasks?.() ?? [];
      const byHandler = new Map<string, number>();
      for (const t of list) byHandler.set(t.handler, (byHandler.get(t.handler) ?? 0) + 1);
      for (const [handler, n] of byHandler) this.set({ handler }, n);
    },
  });
  const statefulTasks = new Gauge({
    name: "metafora_stateful_tasks",
    help: "Stateful tasks running on this node, by state-machine state.",
    labelNames: ["state"] as const,
    registers,
    collect() {
      this.reset();
      // Every state gets a series, zero included, so dashboards never see gaps.
      const counts = new Map<string, number>(STATE_CODES.map((c) => [c, 0]));
      const stateOf = sources.stateOf;
      if (stateOf) {
        for (const t of sources.tasks?.() ?? []) {
          let code: string | undefined;
          try {
            code = stateOf(t.task.id)?.state.code;
          } catch {
            code = undefined; // a broken introspection hook must not break the scrape
          }
          if (code) counts.set(code, (counts.get(code) ?? 0) + 1);
        }
      }
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  const frozen = new Gauge({
    name: "metafora_frozen",
    help: "1 while this node is frozen (not claiming new tasks), else 0.",
    registers,
    collect() {
      this.set(sources.frozen?.() ? 1 : 0);
    },
  });

  const fairShare = new Gauge({
    name: "metafora_fair_share_tasks",
    help: "This node's fair share of the cluster's tasks: (claimed + unclaimed) / live nodes, as its cluster view sees it.",
    registers,
    collect() {
      const view = readShare();
      if (view) this.set(view.share);
    },
  });
  const fairShareDistance = new Gauge({
    name: "metafora_fair_share_distance_ratio",
    help: "How far this node is from its fair share: (running − share) / share; 0.2 is 20 % above it.",
    registers,
    collect() {
      const view = readShare();
      if (view) this.set(view.share > 0 ? (view.local - view.share) / view.share : 0);
    },
  });
  const readShare = (): { share: number; local: number } | undefined => {
    try {
      return sources.share?.();
    } catch {
      return undefined; // a broken view must not break the scrape
    }
  };

  const metrics: MetricsInternals = {
    registry,
    fairShare,
    fairShareDistance,
    rebalanceReleases: new Counter({
      name: "metafora_rebalance_releases_total",
      help: "Tasks this node stopped to rebalance, by trigger (join, return, leave, drift, periodic, command).",
      labelNames: ["trigger"] as const,
      registers,
    }),
    contentType: registry.contentType,
    // prom-client separates metric families with empty lines; the text format needs none and
    // some scrapers and diff tools trip over them.
    text: async () => (await registry.metrics()).replace(/\n{2,}/g, "\n"),
    tasksRunning,
    statefulTasks,
    frozen,
    claimsWon: new Counter({
      name: "metafora_claims_won_total",
      help: "Claims this node won, by handler.",
      labelNames: ["handler"] as const,
      registers,
    }),
    claimsMissed: new Counter({
      name: "metafora_claims_missed_total",
      help: "Claim attempts this node lost (another node won, or the task was gone).",
      registers,
    }),
    releases: new Counter({
      name: "metafora_releases_total",
      help: "Tasks this node released, by handler and reason (a stop reason, 'returned' when the handler chose to, 'error' when it threw).",
      labelNames: ["handler", "reason"] as const,
      registers,
    }),
    done: new Counter({
      name: "metafora_done_total",
      help: "Tasks that finished for good (handler returned done), by handler.",
      labelNames: ["handler"] as const,
      registers,
    }),
    claimsLost: new Counter({
      name: "metafora_claims_lost_total",
      help: "Running tasks whose claim this node lost (owner key changed or deleted, task deleted), by handler and reason.",
      labelNames: ["handler", "reason"] as const,
      registers,
    }),
    handlerErrors: new Counter({
      name: "metafora_handler_errors_total",
      help: "Handler runs that threw or rejected, by handler.",
      labelNames: ["handler"] as const,
      registers,
    }),
    releaseBackoffs: new Counter({
      name: "metafora_release_backoffs_total",
      help: "Times this node backed off from a task its handler released (or ended with an invalid result) soon after the claim, by handler.",
      labelNames: ["handler"] as const,
      registers,
    }),
    failovers: new Counter({
      name: "metafora_failovers_total",
      help: "Estimated claims of tasks whose previous owner vanished without releasing them (see failover.ts for how it is estimated).",
      registers,
    }),
    suspensions: new Counter({
      name: "metafora_lease_suspensions_total",
      help: "Times this node suspended all work because its lease was in doubt.",
      registers,
    }),
    keepaliveLatency: new Histogram({
      name: "metafora_lease_keepalive_seconds",
      help: "Lease keepalive round-trip latency.",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    loopLag: new Histogram({
      name: "metafora_event_loop_lag_seconds",
      help: "Event-loop lag: how late timers fired.",
      buckets: LAG_BUCKETS,
      registers,
    }),
    observeKeepalive(ms: number) {
      if (Number.isFinite(ms) && ms >= 0) metrics.keepaliveLatency.observe(ms / 1000);
    },
    observeLoopLag(ms: number) {
      if (Number.isFinite(ms) && ms >= 0) metrics.loopLag.observe(ms / 1000);
    },
    close() {
      while (metrics.cleanups.length) metrics.cleanups.pop()?.();
    },
    sources,
    cleanups: [],
  };

  const every = opts.loopLagSampleEvery ?? 1000;
  if (every !== false && every > 0) metrics.cleanups.push(sampleLoopLag(every, (ms) => metrics.observeLoopLag(ms)));
  return metrics;
}

/** Timer drift sampler: how much later than asked each tick fires. Unref'd: never keeps a process alive. */
function sampleLoopLag(every: number, observe: (ms: number) => void): () => void {
  const monitor = new LoopLagMonitor({ interval: every, onSample: observe, unref: true });
  monitor.start();
  return () => monitor.stop();
}

/**
 * Count the consumer's events into `metrics` and read its running tasks at scrape time.
 * Returns a function that detaches (also called by metrics.close()).
 */
export function attachConsumerMetrics(
  metrics: Metrics,
  consumer: MetricsConsumer,
  opts: AttachOptions = {},
): () => void {
  const m = metrics as MetricsInternals;
  m.sources.tasks = () => consumer.tasks();
  m.sources.frozen = () => consumer.frozen();
  if (opts.stateOf) m.sources.stateOf = opts.stateOf;
  const cluster = opts.cluster;
  const self = opts.node;
  if (cluster && self !== undefined) m.sources.share = () => shareOf(cluster, self, consumer.tasks().length);

  // Handler of each task we run, so events that carry only the id can be labelled.
  const handlerOf = new Map<string, string>();
  const handlerFor = (taskId: string): string =>
    handlerOf.get(taskId) ?? consumer.tasks().find((t) => t.task.id === taskId)?.handler ?? "unknown";

  const estimator = opts.cluster
    ? new FailoverEstimator(opts.cluster, { self: opts.node, window: opts.failoverWindow })
    : undefined;
  let sampler: ReturnType<typeof setInterval> | undefined;
  if (estimator) {
    sampler = setInterval(() => estimator.sample(), opts.failoverSampleEvery ?? 250);
    (sampler as { unref?: () => void }).unref?.();
  }

  const offs = [
    consumer.on("claimed", (e: ConsumerEvents["claimed"]) => {
      handlerOf.set(e.task.id, e.handler);
      metrics.claimsWon.inc({ handler: e.handler });
      if (estimator?.claimed()) metrics.failovers.inc();
    }),
    consumer.on("claimMissed", () => metrics.claimsMissed.inc()),
    consumer.on("released", (e: ConsumerEvents["released"]) => {
      metrics.releases.inc({ handler: handlerFor(e.taskId), reason: releaseReason(e.reason, e.error) });
      handlerOf.delete(e.taskId);
    }),
    consumer.on("done", (e: ConsumerEvents["done"]) => {
      metrics.done.inc({ handler: handlerFor(e.taskId) });
      handlerOf.delete(e.taskId);
    }),
    consumer.on("lost", (e: ConsumerEvents["lost"]) => {
      metrics.claimsLost.inc({ handler: handlerFor(e.taskId), reason: e.reason });
      handlerOf.delete(e.taskId);
    }),
    consumer.on("handlerError", (e: ConsumerEvents["handlerError"]) => {
      metrics.handlerErrors.inc({ handler: handlerFor(e.taskId) });
    }),
    consumer.on("releaseBackoff", (e: ConsumerEvents["releaseBackoff"]) => {
      metrics.releaseBackoffs.inc({ handler: handlerFor(e.taskId) });
    }),
    consumer.on("suspended", () => metrics.suspensions.inc()),
    consumer.on("rebalanced", (e: ConsumerEvents["rebalanced"]) =>
      metrics.rebalanceReleases.inc({ trigger: e.trigger.kind }, e.released.length),
    ),
  ];
  let detached = false;
  const detach = (): void => {
    if (detached) return;
    detached = true;
    for (const off of offs) off();
    if (sampler) clearInterval(sampler);
  };
  m.cleanups.push(detach);
  return detach;
}

function releaseReason(reason: StopReason | undefined, error: unknown): string {
  if (reason) return reason;
  return error === undefined ? "returned" : "error";
}
