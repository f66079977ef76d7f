/**
 * The Operator implemented on the library's own parts: a Client, plus the state machine's
 * task commander and a state reader when the cluster has them. Used in-process by the node's
 * HTTP API and, in etcd mode, by the CLI talking to etcd directly, so both behave alike.
 */
import type { CoordinatorErrorKind } from "../../coordinators/error-kind.ts";
import { TaskExistsError } from "../../errors.ts";
import { isTerminal, type Message, type State, type TaskCommander } from "../../statemachine/types.ts";
import type { Client, NodeCommand, SubmitResult, TaskInfo, TaskProps, TaskSubmission } from "../../types.ts";
import type { TaskHistory } from "../history/task-history.ts";
import { checkSubmissions } from "./bulk-submit.ts";
import { toStateView } from "./state-view.ts";
import { toTaskRow, type RowSources } from "./task-rows.ts";
import {
  OperatorError,
  type NodeView,
  type Operator,
  type SubmitOutcome,
  type TaskCommandRequest,
  type TaskDetail,
  type TaskRow,
  type TaskStateView,
} from "./types.ts";
import { checkNodeName, checkTaskId } from "./validate.ts";
import { submitWarning, withWaiting, type WaitingContext } from "./waiting.ts";

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
  /** Stored states of every task in one read (etcd: one range read); else readState per task. */
  readStates?(): Promise<Map<string, State>>;
  /** Task history (attempts, errors, events); absent where none is kept. */
  history?: TaskHistory;
  /** Said with a task's history, e.g. why it is empty. */
  historyNote?: string;
  /** Checkpoint sizes and times. */
  checkpointInfos?(): Map<string, { bytes: number; at: string }>;
  /** When this node will try a task it backs off from again (epoch ms). */
  retryAt?(taskId: string): number | undefined;
  /** Deletes a stored state; resolves false when there was none. Absent: no state reset. */
  deleteState?(taskId: string): Promise<boolean>;
  /** What `waiting` reasons and submit warnings can know (see waiting.ts). */
  waiting?: WaitingContext;
  /** The coordinator's own classification of its client's errors (e.g. classifyEtcdError). */
  classifyError?(err: unknown): CoordinatorErrorKind;
  /** Frees what the operator opened (etcd connection); nothing by default. */
  close?(): Promise<void>;
}

export class ClusterOperator implements Operator {
  readonly target: string;

  constructor(private readonly parts: ClusterOperatorParts) {
    this.target = parts.target;
  }

  /**
   * A stored terminal state (completed, failed, killed) would end a resubmitted task the moment
   * it is claimed, so such a submit is refused, saying how to start afresh; likewise a stored
   * state that cannot be read. The submit is never acknowledged and then silently dropped.
   */
  async submitTask(id: string, props?: TaskProps): Promise<SubmitOutcome> {
    checkTaskId(id);
    const { readState } = this.parts;
    if (readState) {
      let stored: State | undefined;
      try {
        stored = await readState(id);
      } catch (err) {
        if (looksUnavailable(err)) throw toOperatorError(err, `read the state of task "${id}"`, this.target);
        throw new OperatorError(
          "conflict",
          `task "${id}" has a stored state that cannot be read (${errorText(err)}); clear it with \`metafora state reset ${id}\` (or DELETE /api/tasks/${encodeURIComponent(id)}/state), then submit again`,
        );
      }
      if (stored && isTerminal(stored.code)) {
        throw new OperatorError(
          "conflict",
          `task "${id}" already ran to the end (stored state: ${stored.code}); a resubmit would end at once. To run it again from the start, clear its state with \`metafora state reset ${id}\` (or DELETE /api/tasks/${encodeURIComponent(id)}/state), then submit again`,
        );
      }
    }
    await this.call(`submit task "${id}"`, () => this.parts.client.submitTask(id, props));
    const waiting = this.parts.waiting;
    if (!waiting) return {};
    const warning = await submitWarning({ id, props: props ?? {} }, waiting).catch(() => undefined);
    return warning === undefined ? {} : { warning };
  }

  /** Clear a stored state so the task (or a resubmit of its id) starts from runnable. */
  async resetState(id: string): Promise<boolean> {
    checkTaskId(id);
    const { deleteState } = this.parts;
    if (!deleteState)
      throw new OperatorError("unsupported", `${this.target} has no state store: there is no state to reset`);
    const tasks = await this.call("list tasks", () => this.parts.client.tasks());
    const task = tasks.find((t) => t.id === id);
    if (task?.owner !== undefined) {
      throw new OperatorError(
        "conflict",
        `task "${id}" is running on node ${task.owner}; its state cannot be reset under it. Pause or kill it, or delete the task, first`,
      );
    }
    return this.call(`reset the state of task "${id}"`, () => deleteState(id));
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

  tasks(): Promise<TaskRow[]> {
    return this.call("list tasks", async () => {
      const infos = [...(await this.parts.client.tasks())].sort(byId);
      const sources = await this.rowSources(infos);
      const rows = infos.map((t) => toTaskRow(t, sources));
      return this.parts.waiting ? withWaiting(rows, this.parts.waiting) : rows;
    });
  }

  async task(id: string): Promise<TaskDetail> {
    checkTaskId(id);
    const info = await this.call("list tasks", async () => (await this.parts.client.tasks()).find((t) => t.id === id));
    if (!info) throw new OperatorError("not-found", `task "${id}" not found`);
    const sources = await this.rowSources([info]);
    const history = this.parts.history;
    const events = history ? await this.call(`read the history of task "${id}"`, () => history.events(id)) : [];
    const note = this.parts.historyNote;
    return { task: toTaskRow(info, sources), history: events, ...(note ? { historyNote: note } : {}) };
  }

  /** What rows are enriched from, read once per listing. */
  private async rowSources(infos: readonly TaskInfo[]): Promise<RowSources> {
    const { readStates, readState, history, checkpointInfos, liveState, retryAt } = this.parts;
    let states: Map<string, State> | undefined;
    if (readStates) states = await readStates();
    else if (readState) {
      states = new Map();
      for (const t of infos) {
        const s = await readState(t.id);
        if (s) states.set(t.id, s);
      }
    }
    let summaries;
    if (history) {
      if (infos.length === 1) {
        const one = await history.summary(infos[0]!.id);
        summaries = new Map(one ? [[infos[0]!.id, one]] : []);
      } else summaries = await history.summaries();
    }
    return {
      ...(states ? { states } : {}),
      ...(summaries ? { summaries } : {}),
      ...(checkpointInfos ? { checkpoints: checkpointInfos() } : {}),
      ...(liveState ? { liveState: (id: string) => liveState(id)?.state } : {}),
      ...(retryAt ? { retryAt } : {}),
    };
  }

  async nodes(): Promise<NodeView[]> {
    const [names, tasks] = await this.call("list nodes", () =>
      Promise.all([this.parts.client.nodes(), this.parts.client.tasks()]),
    );
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
      throw new OperatorError(
        "not-found",
        `node "${node}" is not live (live nodes: ${live.length ? [...live].sort().join(", ") : "none"})`,
      );
    }
    await this.call(`send ${command.command} to node "${node}"`, () => this.parts.client.submitCommand(node, command));
  }

  async taskCommand(id: string, request: TaskCommandRequest): Promise<void> {
    checkTaskId(id);
    const commander = this.parts.taskCommands;
    if (!commander)
      throw new OperatorError("unsupported", `${this.target} has no state machine: task commands are not available`);
    await this.requireTask(id);
    // A command for a task whose stored state cannot be read would be taken and do nothing.
    const { readState } = this.parts;
    if (readState) {
      try {
        await readState(id);
      } catch (err) {
        if (looksUnavailable(err)) throw toOperatorError(err, `read the state of task "${id}"`, this.target);
        throw new OperatorError(
          "conflict",
          `cannot ${request.message} task "${id}": its stored state cannot be read (${errorText(err)}); clear it with \`metafora state reset ${id}\` (it restarts as runnable)`,
        );
      }
    }
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
    if (!loadState)
      throw new OperatorError("unsupported", `${this.target} has no state store: task states are not available`);
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
      throw toOperatorError(err, what, this.target, this.parts.classifyError);
    }
  }
}

export function toOperatorError(
  err: unknown,
  what: string,
  target: string,
  classify: (err: unknown) => CoordinatorErrorKind = () => "other",
): OperatorError {
  if (err instanceof OperatorError) return err;
  if (err instanceof TaskExistsError) return new OperatorError("conflict", err.message);
  const message = err instanceof Error ? err.message : String(err);
  if (classify(err) === "unavailable" || looksUnavailable(err))
    return new OperatorError("unavailable", `could not ${what}: ${target} is unreachable (${message})`);
  return new OperatorError("failed", `could not ${what}: ${message}`);
}

/**
 * Connection-level failures any client shows: a timeout we imposed and socket errors. The
 * coordinator's own client errors are classified by its classifyError.
 */
function looksUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === "TimeoutError") return true;
  const code = (err as { code?: unknown }).code;
  return code === "ECONNREFUSED" || code === "ETIMEDOUT" || code === "EHOSTUNREACH" || code === "ConnectionRefused";
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
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
      if (!request.until)
        throw new OperatorError(
          "invalid",
          `message "sleep" needs until (an RFC 3339 time or a duration such as "10m")`,
        );
      return { code: "sleep", until: request.until };
  }
}

function byId(a: TaskInfo, b: TaskInfo): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
