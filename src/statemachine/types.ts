/**
 * Types of the task state machine: states, messages, and the stores and command
 * channels a stateful task needs. Semantics follow Go Metafora's statemachine package; the
 * shapes are idiomatic TypeScript (async functions and async iterables, not channels).
 */
import type { ClaimRef, HandlerContext, Task, TaskProps } from "../types.ts";

/** Every state code. The first four are live; the last three are terminal. */
export const STATE_CODES = ["runnable", "sleeping", "paused", "fault", "completed", "failed", "killed"] as const;
export type StateCode = (typeof STATE_CODES)[number];

/** Terminal states: the task is finished for good and never runs again. */
export const TERMINAL_STATES: ReadonlySet<StateCode> = new Set<StateCode>(["completed", "failed", "killed"]);

/** One error in a task's history (wire: {"timestamp": time, "error": text}). */
export interface StateError {
  readonly timestamp: Date;
  readonly error: string;
}

/**
 * A task's persistent state (wire: {"state": code, "until"?: time, "errors"?: [...]}).
 * `until` is the wake-up deadline of a sleeping task; `errors` is the retained error history,
 * carried through every later state and trimmed only by the error policy.
 */
export interface State {
  readonly code: StateCode;
  readonly until?: Date;
  readonly errors?: readonly StateError[];
}

/** Every message code. */
export const MESSAGE_CODES = ["run", "sleep", "pause", "kill", "error", "complete", "checkpoint", "release"] as const;
export type MessageCode = (typeof MESSAGE_CODES)[number];

/**
 * What drives a transition: returned by a handler, produced by a state (a sleep ending, the
 * error policy), or sent by an operator as a command. `sleep` needs `until`; `error` needs
 * `error`. Wire: {"message": code, "until"?: time, "error"?: text}.
 */
export interface Message {
  readonly code: MessageCode;
  readonly until?: Date;
  readonly error?: string | Error;
}

/** Where task states live. Implementations must tolerate concurrent calls for different tasks. */
export interface StateStore {
  /**
   * The task's state. A task never seen before is runnable; stores record that on first load
   * (as Go's etcd store does) so operators can see it. Rejects on I/O or decode failure.
   */
  load(taskId: string): Promise<State | undefined>;
  /**
   * Persist the task's state (overwrites). With `claim`, the write is fenced: it lands only
   * while that claim (node and token) still holds the task, and otherwise rejects with
   * ClaimLostError having written nothing. Without it (operators), it is a plain write.
   */
  store(taskId: string, state: State, claim?: ClaimRef): Promise<void>;
  /**
   * Read the state without recording anything (operators looking at a task must not create
   * state for it). Optional; stores that have it are preferred for reads.
   */
  get?(taskId: string): Promise<State | undefined> | State | undefined;
}

/** Sends commands (pause, run, kill, ...) to a task, wherever it runs. */
export interface TaskCommander {
  send(taskId: string, message: Message): Promise<void>;
}

/** Per task: yields messages for the task while this node owns it, until the signal aborts. */
export interface TaskCommandSource {
  /** With `claim`, a command is taken (consumed) only while that claim holds the task. */
  listen(taskId: string, signal: AbortSignal, claim?: ClaimRef): AsyncIterable<Message>;
}

/** What a stateful handler gets: the usual handler context plus its commands and state. */
export type StatefulContext = HandlerContext & {
  /**
   * Commands sent to the task while this execution runs (this execution's own view: once the
   * handler returns, it ends, and anything not taken goes to the next state). On stop, a
   * `release` arrives here as well as through `signal`.
   */
  readonly commands: AsyncIterable<Message>;
  /** The state the task is in: runnable, possibly with an error history. */
  readonly state: State;
};

/**
 * Message codes a handler may return as a bare string: the ones that need no argument.
 * (`sleep` needs a deadline and `error` a reason, so they must be Message objects.)
 */
export type BareMessageCode = Exclude<MessageCode, "sleep" | "error">;

/**
 * A stateful handler: runs while the task is runnable and returns the next message, usually
 * the command it received, `complete` when finished, or `sleep`/`checkpoint`. Throwing, or
 * returning nothing or something invalid, becomes an `error` message (fault).
 */
export type StatefulRun<P extends TaskProps = TaskProps> = (
  task: Task<P>,
  ctx: StatefulContext,
) => Promise<Message | BareMessageCode> | Message | BareMessageCode;

/**
 * Decides what a faulted task does next, given its error history (oldest first). Returns the
 * message to apply (normally `sleep` to retry later, or `error` to fail for good) and the
 * error history to keep.
 */
export type ErrorPolicy = (
  task: Task,
  errors: readonly StateError[],
) => { message: Message; errors: readonly StateError[] };

export function isTerminal(code: StateCode): boolean {
  return TERMINAL_STATES.has(code);
}

export function isStateCode(value: unknown): value is StateCode {
  return typeof value === "string" && (STATE_CODES as readonly string[]).includes(value);
}

export function isMessageCode(value: unknown): value is MessageCode {
  return typeof value === "string" && (MESSAGE_CODES as readonly string[]).includes(value);
}
