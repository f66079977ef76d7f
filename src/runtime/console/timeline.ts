/**
 * The node's recent past for the console, kept in bounded rings so memory never grows with
 * uptime: the last EVENT_CAPACITY consumer events (claims, releases, failovers, errors…) and
 * tasks per node sampled every SAMPLE_EVERY_MS over the last HISTORY_MS. Failovers are the
 * same estimate /metrics counts (metrics/failover.ts): a claim shortly after a node vanished
 * holding tasks.
 */
import type { Consumer } from "../../consumer/consumer.ts";
import type { ClusterState } from "../../types.ts";
import { FailoverEstimator } from "../metrics/failover.ts";
import type { CountSample, NodeCount, TimelineEvent } from "./types.ts";

export const EVENT_CAPACITY = 500;
export const SAMPLE_EVERY_MS = 2_000;
export const HISTORY_MS = 10 * 60_000;

type EventSource = Pick<Consumer, "on" | "tasks">;
type NewEvent = Omit<TimelineEvent, "seq" | "at" | "node">;

export interface TimelineOptions {
  node: string;
  /** The coordinator's live view; without it only this node's own count is known. */
  cluster?: ClusterState;
  sampleEvery?: number;
}

export class Timeline {
  private readonly events: TimelineEvent[] = [];
  private readonly samples: CountSample[] = [];
  private seq = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly offs: Array<() => void> = [];
  private readonly estimator: FailoverEstimator | undefined;
  private readonly consumer: EventSource;

  constructor(
    consumer: EventSource,
    private readonly opts: TimelineOptions,
  ) {
    this.consumer = consumer;
    this.estimator = opts.cluster ? new FailoverEstimator(opts.cluster, { self: opts.node }) : undefined;
    const on = consumer.on.bind(consumer);
    this.offs.push(
      on("claimed", (e) => {
        const failover = this.estimator?.claimed() ?? false;
        this.add({ kind: failover ? "failover" : "claimed", task: e.task.id, handler: e.handler, token: e.token });
      }),
      on("released", (e) => {
        const entry: NewEvent = {
          kind: "released",
          task: e.taskId,
          reason: e.reason ?? (e.error === undefined ? "returned" : "error"),
        };
        this.add(e.error === undefined ? entry : { ...entry, message: messageOf(e.error) });
      }),
      on("done", (e) => this.add({ kind: "done", task: e.taskId })),
      on("lost", (e) => this.add({ kind: "lost", task: e.taskId, reason: e.reason })),
      on("handlerError", (e) => this.add({ kind: "error", task: e.taskId, message: messageOf(e.error) })),
      on("suspended", (e) =>
        this.add({
          kind: "suspended",
          message: `claims in doubt: handlers stop by ${new Date(e.deadline).toISOString()}`,
        }),
      ),
      on("resumed", () => this.add({ kind: "resumed" })),
      on("command", (e) => {
        const task = (e.command.parameters as { task?: unknown } | undefined)?.task;
        this.add({ kind: "command", reason: e.command.command, ...(typeof task === "string" ? { task } : {}) });
      }),
    );
  }

  start(): this {
    if (this.timer) return this;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.opts.sampleEvery ?? SAMPLE_EVERY_MS);
    (this.timer as { unref?: () => void }).unref?.();
    return this;
  }

  /** Number of events recorded so far (also the seq of the newest). */
  get changes(): number {
    return this.seq;
  }

  /** Events with seq greater than `seq` (all buffered ones for 0). */
  since(seq: number): TimelineEvent[] {
    if (seq >= this.seq) return [];
    const first = this.events.findIndex((e) => e.seq > seq);
    return first < 0 ? [] : this.events.slice(first);
  }

  history(): CountSample[] {
    return [...this.samples];
  }

  latestSample(): CountSample | undefined {
    return this.samples[this.samples.length - 1];
  }

  /** Live nodes and their task counts, sorted by name. */
  nodeCounts(): NodeCount[] {
    const cluster = this.opts.cluster;
    let counts: ReadonlyMap<string, number> | undefined;
    try {
      counts = cluster?.nodeTaskCounts();
    } catch {
      counts = undefined;
    }
    if (!counts) return [{ name: this.opts.node, tasks: this.consumer.tasks().length }];
    return [...counts]
      .map(([name, tasks]) => ({ name, tasks }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  unclaimed(): number {
    try {
      return this.opts.cluster?.unclaimedCount() ?? 0;
    } catch {
      return 0;
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const off of this.offs.splice(0)) off();
  }

  private sample(): void {
    this.estimator?.sample();
    const counts: Record<string, number> = {};
    for (const n of this.nodeCounts()) counts[n.name] = n.tasks;
    this.samples.push({ at: Date.now(), counts });
    const keep = Math.ceil(HISTORY_MS / (this.opts.sampleEvery ?? SAMPLE_EVERY_MS));
    if (this.samples.length > keep) this.samples.splice(0, this.samples.length - keep);
  }

  private add(e: NewEvent): void {
    this.events.push({ seq: ++this.seq, at: new Date().toISOString(), node: this.opts.node, ...e });
    if (this.events.length > EVENT_CAPACITY) this.events.shift();
  }
}

/** One line for the timeline (stacks belong in the log, not in a browser). */
function messageOf(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return typeof err === "string" ? err : String(err);
}
