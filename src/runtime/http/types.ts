/** What the HTTP server needs from a running node (a subset of runtime/services.ts's RuntimeServices). */
import type { Consumer } from "../../consumer/consumer.ts";
import type { CoordinatorErrorKind } from "../../coordinators/error-kind.ts";
import type { State, StateStore, TaskCommander } from "../../statemachine/types.ts";
import type { Client, Logger } from "../../types.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Operator } from "../operator/types.ts";
import type { TaskHistory } from "../history/task-history.ts";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Timeline } from "../console/timeline.ts";
import type { NodeVitals } from "../console/vitals.ts";

export interface HttpServices {
  config: { http: { listen: string; token?: string }; coordinator?: string };
  node: string;
  started: Date;
  consumer: Pick<Consumer, "tasks" | "frozen"> & Partial<Pick<Consumer, "ignoredUntil">>;
  client: Client;
  taskCommands?: TaskCommander;
  stateStore?: StateStore;
  /**
   * Read a stored state without creating one (etcd: a plain get of state/T). When absent,
   * a MemoryStateStore is read with get(); any other store with load() after an existence check.
   */
  readState?(taskId: string): Promise<State | undefined>;
  stateOf?(taskId: string): { state: State; since: Date } | undefined;
  /** Every stored state in one read, for listing tasks (etcd: one range read). */
  readStates?(): Promise<Map<string, State>>;
  /** Task history, checkpoint sizes and back-off deadlines for the enriched task rows. */
  history?: TaskHistory;
  checkpoints?: { checkpointInfos(): Map<string, { bytes: number; at: string }> };
  retryAt?(taskId: string): number | undefined;
  /** Delete a stored state (`DELETE /api/tasks/:id/state`); absent: not offered. */
  deleteState?(taskId: string): Promise<boolean>;
  /**
   * Handlers this node has; with `coordinator: "embedded"` (this node is the whole cluster),
   * submits of a task no handler here can run answer with a warning.
   */
  handlerNames?: readonly string[];
  /** The coordinator's classification of its client's errors (unreachable → 503). */
  classifyError?(err: unknown): CoordinatorErrorKind;
  isReady(): boolean;
  log: Logger;
  metrics: Pick<Metrics, "text" | "contentType">;
  /** What the operator console shows beyond the API (absent: the console shows less). */
  console?: ConsoleSources;
}

export interface ConsoleSources {
  timeline: Timeline;
  vitals: NodeVitals;
  version: string;
  /** "embedded" or "etcd". */
  coordinator: string;
  handlerNames: readonly string[];
}

/** What a route handler returns; the router writes it. */
export type Reply =
  | { status: number; json: unknown }
  | { status: number; text: string; contentType: string; headers?: Record<string, string> }
  /** A long-lived response (Server-Sent Events): the route writes to `res` itself. */
  | { status: number; stream(res: ServerResponse): void };

export interface RouteContext {
  req: IncomingMessage;
  params: Readonly<Record<string, string>>;
  url: URL;
  services: HttpServices;
  operator: Operator;
  /** The request body parsed as JSON (size-limited; 400/413/415 on bad input). */
  body(): Promise<unknown>;
}

export interface Route {
  method: "GET" | "POST" | "DELETE";
  /** Path pattern; `:name` segments become params. */
  path: string;
  /** State-changing routes need the token (see auth.ts). */
  changesState?: boolean;
  handle(ctx: RouteContext): Promise<Reply> | Reply;
}
