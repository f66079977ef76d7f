/**
 * A backend is everything `metafora run` gets from the configured coordinator: the Coordinator
 * the consumer runs on, a Client, the state machine's store and task commands, and how to
 * close it all. One module per kind: embedded/ (memory broker persisted under data_dir) and
 * etcd-backend.ts, each listed in open-backend.ts.
 */
import type { State, StateStore, TaskCommander, TaskCommandSource } from "../statemachine/types.ts";
import type { CoordinatorErrorKind } from "../coordinators/error-kind.ts";
import type { Client, Coordinator } from "../types.ts";
import type { RuntimeConfig } from "./config/schema.ts";
import type { Metrics } from "./metrics.ts";

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
  /** A stored state without creating one. */
  readState(taskId: string): Promise<State | undefined>;
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
