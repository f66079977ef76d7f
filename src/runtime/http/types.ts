/** What the HTTP server needs from a running node (a subset of runtime/services.ts's RuntimeServices). */
import type { Consumer } from "../../consumer.ts";
import type { CoordinatorErrorKind } from "../../coordinators/error-kind.ts";
import type { State, StateStore, TaskCommander } from "../../statemachine/types.ts";
import type { Client, Logger } from "../../types.ts";
import type { Metrics } from "../metrics.ts";
import type { Operator } from "../operator/types.ts";
import type { IncomingMessage } from "node:http";

export interface HttpServices {
  config: { http: { listen: string; token?: string } };
  node: string;
  started: Date;
  consumer: Pick<Consumer, "tasks" | "frozen">;
  client: Client;
  taskCommands?: TaskCommander;
  stateStore?: StateStore;
  /**
   * Read a stored state without creating one (etcd: a plain get of state/T). When absent,
   * a MemoryStateStore is read with get(); any other store with load() after an existence check.
   */
  readState?(taskId: string): Promise<State | undefined>;
  stateOf?(taskId: string): { state: State; since: Date } | undefined;
  /** The coordinator's classification of its client's errors (unreachable → 503). */
  classifyError?(err: unknown): CoordinatorErrorKind;
  isReady(): boolean;
  log: Logger;
  metrics: Pick<Metrics, "text" | "contentType">;
}

/** What a route handler returns; the router writes it. */
export type Reply =
  | { status: number; json: unknown }
  | { status: number; text: string; contentType: string };

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
