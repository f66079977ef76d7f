/**
 * What the node sends the console (and any other client of `GET /api/events` and the `self`
 * part of `GET /api/nodes`). Shared by the server and the page: the page imports these types
 * only, so nothing of the runtime ends up in the browser bundle.
 */

/** One thing that happened on a node, for the console's timeline. */
export interface TimelineEvent {
  /** Increases by one per event on this node (since it started). */
  readonly seq: number;
  /** RFC 3339. */
  readonly at: string;
  readonly kind: "claimed" | "released" | "done" | "lost" | "error" | "failover" | "suspended" | "resumed" | "command";
  /** The node that saw it (always this node: every node records its own events). */
  readonly node: string;
  readonly task?: string;
  readonly handler?: string;
  readonly token?: number;
  /** Stop reason (shutdown, balance, command, lost, deleted…) or the node command's name. */
  readonly reason?: string;
  /** Error message, for errors. */
  readonly message?: string;
}

/** Figures this node knows about itself. */
export interface SelfFigures {
  readonly name: string;
  readonly version: string;
  readonly coordinator: string;
  /** RFC 3339. */
  readonly started: string;
  readonly frozen: boolean;
  /** Tasks whose handlers run in this process right now. */
  readonly running: number;
  /** etcd lease TTL (ms); absent on the embedded coordinator, which has no lease. */
  readonly leaseTtlMs?: number;
  /** Round trip of the last confirmed lease keepalive (ms), etcd only. */
  readonly keepaliveMs?: number;
  /** Worst event-loop lag over the last ten seconds (ms). */
  readonly loopLagMs?: number;
  /** Whether state-changing requests need the bearer token. */
  readonly tokenRequired: boolean;
  /** Handler names this node runs. */
  readonly handlers: readonly string[];
}

/** A live node and how many tasks it owns, from this node's view of the cluster. */
export interface NodeCount {
  readonly name: string;
  readonly tasks: number;
}

/** Tasks per node at one moment, for the chart. */
export interface CountSample {
  /** Epoch ms. */
  readonly at: number;
  readonly counts: Readonly<Record<string, number>>;
}

/** Fields both SSE messages carry. */
export interface ClusterFigures {
  /** RFC 3339. */
  readonly at: string;
  readonly self: SelfFigures;
  readonly nodes: readonly NodeCount[];
  /** Tasks no node owns, as far as this node has seen. */
  readonly unclaimed: number;
  /** Changes when this node saw something happen to tasks (a hint to refetch the task list). */
  readonly changes: number;
}

/** SSE `hello`: sent first on every connection (so a reconnect starts from a clean slate). */
export interface HelloMessage extends ClusterFigures {
  readonly history: readonly CountSample[];
  readonly events: readonly TimelineEvent[];
}

/** SSE `snapshot`: sent every second while the stream is open. */
export interface SnapshotMessage extends ClusterFigures {
  readonly sample?: CountSample;
  /** Events since the previous message. */
  readonly events: readonly TimelineEvent[];
}
