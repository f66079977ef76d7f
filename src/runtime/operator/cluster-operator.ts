/**
 * The Operator implemented on the library's own parts: a Client, plus the state machine's
 * task commander and a state reader when the cluster has them. Used in-process by the node's
 * HTTP API and, in etcd mode, by the CLI talking to etcd directly, so both behave alike.
 */
import { GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError } from "etcd3";
import { TaskExistsError } from "../../errors.ts";
import type { Message, State, TaskCommander } from "../../statemachine/types.ts";
import type { Client, NodeCommand, SubmitResult, TaskInfo, TaskProps, TaskSubmission } from "../../types.ts";
import { checkSubmissions } from "./bulk-submit.ts";
import { toStateView } from "./state-view.ts";
import {
  OperatorError,
  type NodeView,
  type Operator,
  type TaskCommandRequest,
  type TaskStateView,
} from "./types.ts";
import { checkNodeName, checkTaskId } from "./validate.ts";

export interface ClusterOperatorParts {
  /** Names the cluster in messages, e.g. "etcd at 127.0.0.1:2379 (/metafora)". */
  target: string;
  client: Client;
  /** Sends state-machine messages; absent when the cluster has no state machine wired. */
  taskCommands?: TaskCommander;
  /** Reads a task's stored state without creating one; undefined when nothing is stored. */
  readState?(taskId: string): Promise<State | undefined>;
  /**
   * Fallback when no such read exists: a StateStore's load(), which records "runnable" for an
   * id it has not seen. Only called after checking that the task exists.
   */
  loadState?(taskId: string): Promise<State | undefined>;
  /** Live state of a task running in this process (services.stateOf), with when it began. */
  liveState?(taskId: string): { state: State; since: Date } | undefined;
  /** Frees what the operator opened (etcd connection); nothing by default. */
  close?(): Promise<void>;
}

export class ClusterOperator implements Operator {
  readonly target: string;

  constructor(private readonly parts: ClusterOperatorParts) {
    this.target = parts.target;
  }

  async submitTask(id: string, props?: TaskProps): Promise<void> {
    checkTaskId(id);
    await this.call(`submit task "${id}"`, () => this.parts.client.submitTask(id, props));
  }

  async submitTasks(tasks: readonly TaskSubmission[]): Promise<SubmitResult[]> {
    const checked = checkSubmissions(tasks, (i) => `task ${i + 1}`);
    return this.call(`submit ${checked.length} tasks`, () => this.parts.client.submitTasks(checked));
  }

  async deleteTask(id: string): Promise<void> {
    checkTaskId(id);
    const deleted = await this.call(`delete task "${id}"`, () => this.parts.client.deleteTask(id));
    if (!deleted) throw new OperatorError("not-found", `task "${id}" not found`);
  }

  tasks(): Promise<TaskInfo[]> {
    return this.call("list tasks", async () => [...(await this.parts.client.tasks())].sort(byId));
  }

  async nodes(): Promise<NodeView[]> {
    const [names, tasks] = await this.call("list nodes", () => Promise.all([this.parts.client.nodes(), this.parts.client.tasks()]));
    const counts = new Map<string, number>();
    for (const t of tasks) if (t.owner) counts.set(t.owner, (counts.get(t.owner) ?? 0) + 1);
    return [...new Set(names)].sort().map((name) => ({ name, tasks: counts.get(name) ?? 0 }));
  }

  async nodeCommand(node: string, command: NodeCommand): Promise<void> {
    checkNodeName(node);
    // A command for a node that is not live would sit in the coordinator forever (nobody
    // consumes it), so refuse it instead of accepting it silently.
    const live = await this.call("list nodes", () => this.parts.client.nodes());
    if (!live.includes(node)) {
      throw new OperatorError("not-found", `node "${node}" is not live (live nodes: ${live.length ? [...live].sort().join(", ") : "none"})`);
    }
    await this.call(`send ${command.command} to node "${node}"`, () => this.parts.client.submitCommand(node, command));
  }

  async taskCommand(id: string, request: TaskCommandRequest): Promise<void> {
    checkTaskId(id);
    const commander = this.parts.taskCommands;
    if (!commander) throw new OperatorError("unsupported", `${this.target} has no state machine: task commands are not available`);
    await this.requireTask(id);
    await this.call(`send ${request.message} to task "${id}"`, () => commander.send(id, toMessage(request)));
  }

  async taskState(id: string): Promise<TaskStateView> {
    checkTaskId(id);
    const live = this.parts.liveState?.(id);
    if (live) return { id, state: toStateView(live.state), since: live.since.toISOString() };
    const { readState, loadState } = this.parts;
    if (readState) {
      // Stored states outlive their tasks (completed, killed): show them even when the task is gone.
      const stored = await this.call(`read the state of task "${id}"`, () => readState(id));
      if (stored) return { id, state: toStateView(stored) };
      await this.requireTask(id);
      return { id };
    }
    if (!loadState) throw new OperatorError("unsupported", `${this.target} has no state store: task states are not available`);
    await this.requireTask(id); // load() would record a state for any id, so check first
    const loaded = await this.call(`read the state of task "${id}"`, () => loadState(id));
    return loaded ? { id, state: toStateView(loaded) } : { id };
  }

  async close(): Promise<void> {
    await this.parts.close?.();
  }

  private async requireTask(id: string): Promise<void> {
    const tasks = await this.call("list tasks", () => this.parts.client.tasks());
    if (!tasks.some((t) => t.id === id)) throw new OperatorError("not-found", `task "${id}" not found`);
  }

  /** Run one coordinator call, turning its failures into OperatorErrors that say what failed. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toOperatorError(err, what, this.target);
    }
  }
}

export function toOperatorError(err: unknown, what: string, target: string): OperatorError {
  if (err instanceof OperatorError) return err;
  if (err instanceof TaskExistsError) return new OperatorError("conflict", err.message);
  const message = err instanceof Error ? err.message : String(err);
  if (looksUnavailable(err)) return new OperatorError("unavailable", `could not ${what}: ${target} is unreachable (${message})`);
  return new OperatorError("failed", `could not ${what}: ${message}`);
}

/**
 * Connection-level failures: etcd3's transient errors (unavailable, deadline exceeded), its
 * circuit breaker giving up on every host, a timeout we imposed, and socket errors.
 */
function looksUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError || isRecoverableError(err)) return true;
  if ((err as { isBrokenCircuitError?: unknown }).isBrokenCircuitError === true) return true;
  if (err.name === "TimeoutError") return true;
  const code = (err as { code?: unknown }).code;
  return code === "ECONNREFUSED" || code === "ETIMEDOUT" || code === "EHOSTUNREACH" || code === "ConnectionRefused";
}

function toMessage(request: TaskCommandRequest): Message {
  switch (request.message) {
    case "pause":
      return { code: "pause" };
    case "resume":
      return { code: "run" };
    case "kill":
      return { code: "kill" };
    case "sleep":
      if (!request.until) throw new OperatorError("invalid", `message "sleep" needs until (an RFC 3339 time or a duration such as "10m")`);
      return { code: "sleep", until: request.until };
  }
}

function byId(a: TaskInfo, b: TaskInfo): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
