/**
 * What happened to each task, as operators read it in `metafora task <id>`, the API and the
 * console: the last HISTORY_LIMIT events per task (submitted, claimed with node and token,
 * released and why, done, errors with time and message, lost, deleted, state changes), plus
 * counters that outlive the bounded list (attempts = claims, errors) and the last error.
 *
 * Two implementations behind one interface: the embedded coordinator persists it in its
 * SQLite database (embedded/sqlite-history.ts); on etcd each node keeps, in memory, what it
 * saw of the tasks it ran (MemoryTaskHistory): etcd itself stores no history, so there a task's
 * history is what the answering node knows and starts empty after that node restarts.
 */

export type HistoryKind = "submitted" | "claimed" | "released" | "done" | "error" | "lost" | "deleted" | "state";

export interface HistoryEvent {
  /** RFC 3339. */
  readonly at: string;
  readonly kind: HistoryKind;
  readonly node?: string;
  readonly token?: number;
  /** Why it was released or lost; the new state for "state". */
  readonly reason?: string;
  /** The error message for "error". */
  readonly message?: string;
}

export interface TaskSummary {
  /** Claims of the task (each is one attempt to run it). */
  readonly attempts: number;
  /** Handler errors. */
  readonly errors: number;
  readonly lastError?: { readonly at: string; readonly message: string };
}

export const HISTORY_LIMIT = 50;
/** Longest error message kept: a stack trace is for the log, the history wants the gist. */
export const HISTORY_MESSAGE_LIMIT = 2000;

export interface TaskHistory {
  /** Where the history lives, for `metafora task` to explain what it shows. */
  readonly scope: "persisted" | "this node (memory)";
  record(taskId: string, event: HistoryEvent): void;
  /** Oldest first, at most HISTORY_LIMIT. */
  events(taskId: string): Promise<HistoryEvent[]>;
  summary(taskId: string): Promise<TaskSummary | undefined>;
  /** Summaries of every task known, for listing many rows without one read per row. */
  summaries(): Promise<Map<string, TaskSummary>>;
}

/** The summary after one more event. */
export function nextSummary(prev: TaskSummary | undefined, event: HistoryEvent): TaskSummary {
  const base: TaskSummary = prev ?? { attempts: 0, errors: 0 };
  if (event.kind === "claimed") return { ...base, attempts: base.attempts + 1 };
  if (event.kind === "error")
    return { ...base, errors: base.errors + 1, lastError: { at: event.at, message: event.message ?? "" } };
  return base;
}

export function clipMessage(message: string): string {
  return message.length > HISTORY_MESSAGE_LIMIT ? `${message.slice(0, HISTORY_MESSAGE_LIMIT - 1)}…` : message;
}

/**
 * In memory, bounded twice: HISTORY_LIMIT events per task, and at most `maxTasks` tasks (the
 * ones touched longest ago are forgotten first), so a node that runs millions of short tasks
 * over its life does not grow without end.
 */
export class MemoryTaskHistory implements TaskHistory {
  readonly scope = "this node (memory)" as const;
  private readonly byTask = new Map<string, { events: HistoryEvent[]; summary: TaskSummary }>();

  constructor(private readonly maxTasks = 10_000) {}

  record(taskId: string, event: HistoryEvent): void {
    const entry = this.byTask.get(taskId) ?? { events: [], summary: { attempts: 0, errors: 0 } };
    this.byTask.delete(taskId); // re-insert: Map order is then least recently touched first
    entry.events.push(event);
    if (entry.events.length > HISTORY_LIMIT) entry.events.splice(0, entry.events.length - HISTORY_LIMIT);
    entry.summary = nextSummary(entry.summary, event);
    this.byTask.set(taskId, entry);
    while (this.byTask.size > this.maxTasks) this.byTask.delete(this.byTask.keys().next().value as string);
  }

  async events(taskId: string): Promise<HistoryEvent[]> {
    return [...(this.byTask.get(taskId)?.events ?? [])];
  }

  async summary(taskId: string): Promise<TaskSummary | undefined> {
    return this.byTask.get(taskId)?.summary;
  }

  async summaries(): Promise<Map<string, TaskSummary>> {
    return new Map([...this.byTask].map(([id, e]) => [id, e.summary]));
  }
}
