/**
 * What a running node offers the HTTP server and metrics: one object built by
 * `metafora run` once the coordinator, handlers and consumer exist.
 */
import type { Consumer } from "../consumer/consumer.ts";
import type { CoordinatorErrorKind } from "../coordinators/error-kind.ts";
import type { State, StateStore, TaskCommander } from "../statemachine/types.ts";
import type { Client, Logger } from "../types.ts";
import type { RuntimeConfig } from "./config/schema.ts";
import type { CheckpointStore } from "./backends/backend.ts";
import type { ConsoleSources } from "./http/types.ts";
import type { Metrics } from "./metrics/metrics.ts";
import type { TaskHistory } from "./history/task-history.ts";

export interface RuntimeServices {
  config: RuntimeConfig;
  node: string;
  started: Date;
  consumer: Consumer;
  client: Client;
  taskCommands?: TaskCommander;
  stateStore?: StateStore;
  /** A stored state without creating one (the store's load() records "runnable" for new ids). */
  readState?(taskId: string): Promise<State | undefined>;
  /** Every stored state in one read (etcd: one range read instead of one get per task). */
  readStates?(): Promise<Map<string, State>>;
  /** State of a stateful task running on this node, and since when. */
  stateOf?(taskId: string): { state: State; since: Date } | undefined;
  /** What happened to each task (embedded: persisted; etcd: what this node saw). */
  history?: TaskHistory;
  /** Checkpoint sizes and times, where the backend stores them. */
  checkpoints?: Pick<CheckpointStore, "checkpointInfos">;
  /** When this node will next consider a task it backs off from (epoch ms), if it does. */
  retryAt?(taskId: string): number | undefined;
  /** Delete a stored state (`state reset`); false when there was none. */
  deleteState?(taskId: string): Promise<boolean>;
  /** The coordinator's classification of its client's errors, for HTTP statuses. */
  classifyError?(err: unknown): CoordinatorErrorKind;
  handlerNames: string[];
  /** Registered with the coordinator and watching. */
  isReady(): boolean;
  log: Logger;
  metrics: Metrics;
  /** The operator console's timeline and node figures. */
  console?: ConsoleSources;
}
