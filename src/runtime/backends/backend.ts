/**
 * A backend is everything `metafora run` gets from the configured coordinator: the Coordinator
 * the consumer runs on, a Client, the state machine's store and task commands, and how to
 * close it all. One module per kind: embedded/ (memory broker persisted under data_dir) and
 * etcd.ts, each listed in open.ts.
 */
import type { State, StateStore, TaskCommander, TaskCommandSource } from "../../statemachine/types.ts";
import type { CoordinatorErrorKind } from "../../coordinators/error-kind.ts";
import type { Client, Coordinator } from "../../types.ts";
import type { RuntimeConfig } from "../config/schema.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { TaskHistory } from "../history/task-history.ts";

/** Where a backend keeps checkpoints (embedded: its database); values are JSON text. */
export interface CheckpointStore {
  putCheckpoint(taskId: string, checkpoint: { value: string; token: number; at: string }): Promise<void>;
  getCheckpoint(taskId: string): { value: string; token: number; at: string } | undefined;
  /** Size in bytes (of the JSON text) and time of every stored checkpoint. */
  checkpointInfos(): Map<string, { bytes: number; at: string }>;
}

export interface Backend {
  readonly kind: RuntimeConfig["coordinator"];
  /** For logs: where the data lives ("/var/lib/metafora", "etcd http://…/metafora"). */
  readonly description: string;
  readonly coordinator: Coordinator;
  readonly client: Client;
  readonly stateStore: StateStore;
  readonly taskCommands: TaskCommander & TaskCommandSource;
  /** Claims the consumer attempts at once: 1 in memory; more over a network round trip. */
  readonly claimConcurrency: number;
  /** What happened to each task (persisted on embedded; this node's memory on etcd). */
  readonly history: TaskHistory;
  /** Present where the backend stores checkpoints itself (embedded). */
  readonly checkpoints?: CheckpointStore;
  /** A stored state without creating one. */
  readState(taskId: string): Promise<State | undefined>;
  /** Every stored state in one read, where one read per task would cost a round trip each (etcd). */
  readStates?(): Promise<Map<string, State>>;
  /** Delete a stored state (operators' `state reset`); false when there was none. */
  deleteState(taskId: string): Promise<boolean>;
  /**
   * Why joining failed, for the exit code: "credentials" (refused user/password/permissions:
   * a configuration problem) or "unavailable" (could not reach the cluster).
   */
  classifyJoinError(err: unknown): CoordinatorErrorKind;
  /** What kind of failure any call of this backend's coordinator met (its client's errors). */
  classifyError(err: unknown): CoordinatorErrorKind;
  /** Feed coordinator figures (lease keepalive latency, loop lag) into the metrics. */
  attachMetrics(metrics: Metrics): void;
  /** Release files, locks and connections. Called after the consumer has stopped. */
  close(): Promise<void>;
}
