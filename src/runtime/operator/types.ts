/**
 * What an operator can do to a cluster, independent of how it is reached. Three ways share
 * this interface: in-process (the node's HTTP API serving requests), etcd (the CLI talking to
 * etcd directly) and HTTP (the CLI talking to an embedded node's JSON API).
 */
import type { NodeCommand, SubmitResult, TaskInfo, TaskProps, TaskSubmission } from "../../types.ts";
import type { HistoryEvent } from "../history/task-history.ts";

export type { HistoryEvent, HistoryKind } from "../history/task-history.ts";

/** A state-machine command an operator may send to a stateful task. */
export type TaskMessageName = "pause" | "resume" | "sleep" | "kill";

export interface TaskCommandRequest {
  readonly message: TaskMessageName;
  /** Wake-up time; required for "sleep" only. */
  readonly until?: Date;
}

/** A state as operators see it (JSON-friendly: dates as RFC 3339 strings). */
export interface StateView {
  readonly code: string;
  readonly until?: string;
  readonly errors?: ReadonlyArray<{ readonly timestamp: string; readonly error: string }>;
}

export interface TaskStateView {
  readonly id: string;
  /** Undefined when the task has never run as a stateful task (nothing stored). */
  readonly state?: StateView;
  /** When the running node entered this state, if the task is running where we can see it. */
  readonly since?: string;
}

/**
 * A task as operators list it: the coordinator's {id, props, owner?, token?} plus what is known
 * about it. Fields are absent when unknown (etcd keeps no attempts or errors; a node knows
 * those only for the tasks it ran).
 */
export interface TaskRow extends TaskInfo {
  /** The handler the task routes to (props.handler, else the id before the first ':'). */
  readonly handler: string;
  /** The state machine's state; errors is how many errors the state holds. */
  readonly state?: { readonly code: string; readonly until?: string; readonly errors?: number };
  /** Times the task was claimed (each claim is one attempt to run it). */
  readonly attempts?: number;
  /** Handler errors (thrown or rejected runs), counted with attempts. */
  readonly errors?: number;
  readonly lastError?: { readonly at: string; readonly message: string };
  /** RFC 3339: when the task will be tried again (a node backing off after an error, a sleep). */
  readonly nextRetry?: string;
  /** Why it is not running, in words (set by a separate function). */
  readonly waiting?: string;
  /** The latest checkpoint's size (bytes of JSON) and time. */
  readonly checkpoint?: { readonly bytes: number; readonly at: string };
  /** Set when the task's props could not be read. */
  readonly propsError?: string;
}

/** `metafora task <id>`, GET /api/tasks/:id. */
export interface TaskDetail {
  readonly task: TaskRow;
  /** Oldest first, the last 50 events at most. */
  readonly history: readonly HistoryEvent[];
  /** Where the history comes from, or why there is none (etcd read directly keeps none). */
  readonly historyNote?: string;
}

export interface NodeView {
  readonly name: string;
  /** Tasks this node owns right now. */
  readonly tasks: number;
}

/** What a submit answers besides success. */
export interface SubmitOutcome {
  /** Set when the task was stored but nothing can run it yet (e.g. no live node has its handler). */
  readonly warning?: string;
}

export interface Operator {
  /** Where this operator points, for messages ("node at http://…", "etcd at …"). */
  readonly target: string;
  /** Refuses (conflict) an id whose stored state is terminal or unreadable: see ClusterOperator. */
  submitTask(id: string, props?: TaskProps): Promise<SubmitOutcome>;
  /** Create many tasks; per task "created" or "exists" (an existing id is not an error). */
  submitTasks(tasks: readonly TaskSubmission[]): Promise<SubmitResult[]>;
  /** Delete a task's stored state-machine state (not while it is claimed). False if there was none. */
  resetState(id: string): Promise<boolean>;
  deleteTask(id: string): Promise<void>;
  tasks(): Promise<TaskRow[]>;
  /** One task with its history; not-found when it does not exist. */
  task(id: string): Promise<TaskDetail>;
  nodes(): Promise<NodeView[]>;
  nodeCommand(node: string, command: NodeCommand): Promise<void>;
  taskCommand(id: string, request: TaskCommandRequest): Promise<void>;
  taskState(id: string): Promise<TaskStateView>;
  close(): Promise<void>;
}

/**
 * Why an operation failed, in categories every transport maps the same way:
 * HTTP status on the server, exit code in the CLI.
 */
export type OperatorErrorKind =
  | "invalid" // bad request: the message says what was expected (HTTP 400, exit 2)
  | "unauthorized" // missing or wrong token (HTTP 401, exit 1)
  | "forbidden" // refused by policy, e.g. state changes on a public address without a token (HTTP 403, exit 1)
  | "not-found" // no such task/node (HTTP 404, exit 1)
  | "conflict" // already exists (HTTP 409, exit 1)
  | "unsupported" // this node/cluster cannot do it, e.g. no state machine (HTTP 501, exit 1)
  | "unavailable" // the coordinator or node could not be reached or is not ready (HTTP 503, exit 69)
  | "failed"; // anything else (HTTP 500, exit 1)

export class OperatorError extends Error {
  override name = "OperatorError";
  constructor(
    readonly kind: OperatorErrorKind,
    message: string,
  ) {
    super(message);
  }
}

const HTTP_STATUS: Record<OperatorErrorKind, number> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  "not-found": 404,
  conflict: 409,
  unsupported: 501,
  unavailable: 503,
  failed: 500,
};

export function httpStatusOf(kind: OperatorErrorKind): number {
  return HTTP_STATUS[kind];
}

/** Inverse of httpStatusOf, for the HTTP operator reading a node's error replies. */
export function kindOfHttpStatus(status: number): OperatorErrorKind {
  for (const [kind, s] of Object.entries(HTTP_STATUS)) if (s === status) return kind as OperatorErrorKind;
  if (status === 413 || status === 405 || status === 415) return "invalid";
  return status >= 500 ? "failed" : "invalid";
}
