/**
 * What a running node offers the HTTP server and metrics: one object built by
 * `metafora run` once the coordinator, handlers and consumer exist.
 */
import type { Consumer } from "../consumer.ts";
import type { CoordinatorErrorKind } from "../coordinators/error-kind.ts";
import type { State, StateStore, TaskCommander } from "../statemachine/types.ts";
import type { Client, Logger } from "../types.ts";
import type { RuntimeConfig } from "./config/schema.ts";
import type { Metrics } from "./metrics.ts";

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
  /** State of a stateful task running on this node, and since when. */
  stateOf?(taskId: string): { state: State; since: Date } | undefined;
  /** The coordinator's classification of its client's errors, for HTTP statuses. */
  classifyError?(err: unknown): CoordinatorErrorKind;
  handlerNames: string[];
  /** Registered with the coordinator and watching. */
  isReady(): boolean;
  log: Logger;
  metrics: Metrics;
}
