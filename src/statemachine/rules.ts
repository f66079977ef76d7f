/**
 * THE transition table (Go Metafora's): 23 rules, nothing else is allowed. This is the only place
 * that knows which message moves which state where.
 */
import { errorText } from "./messages.ts";
import type { Message, MessageCode, State, StateCode, StateError } from "./types.ts";

type Row = Partial<Record<MessageCode, StateCode>>;

/** From state → message → next state. A missing entry is an invalid transition. */
export const TRANSITIONS: Readonly<Record<StateCode, Readonly<Row>>> = {
  //          run         sleep       pause     kill      error    complete     checkpoint  release
  runnable: {
    run: "runnable",
    sleep: "sleeping",
    pause: "paused",
    kill: "killed",
    error: "fault",
    complete: "completed",
    checkpoint: "runnable",
    release: "runnable",
  },
  sleeping: {
    run: "runnable",
    sleep: "sleeping",
    pause: "paused",
    kill: "killed",
    error: "fault",
    checkpoint: "sleeping",
    release: "sleeping",
  },
  // No `error` here (as in Go): an invalid message while paused releases the task, still paused.
  paused: {
    run: "runnable",
    sleep: "sleeping",
    pause: "paused",
    kill: "killed",
    checkpoint: "paused",
    release: "paused",
  },
  fault: { sleep: "sleeping", error: "failed" },
  completed: {},
  failed: {},
  killed: {},
};

/** Every (from, message, to) rule, in table order: for tests and documentation. */
export function allRules(): Array<{ from: StateCode; message: MessageCode; to: StateCode }> {
  const rules: Array<{ from: StateCode; message: MessageCode; to: StateCode }> = [];
  for (const [from, row] of Object.entries(TRANSITIONS) as Array<[StateCode, Row]>) {
    for (const [message, to] of Object.entries(row) as Array<[MessageCode, StateCode]>)
      rules.push({ from, message, to });
  }
  return rules;
}

/** The state a message leads to from `from`, or undefined if the transition is invalid. */
export function nextStateCode(from: StateCode, message: MessageCode): StateCode | undefined {
  return TRANSITIONS[from][message];
}

/**
 * Apply a message to a state (Go's apply): the new state, or undefined if the transition
 * is invalid. A message's error is appended to the history, which carries into every later
 * state. `until` is kept only on sleeping states; `checkpoint` and `release` while sleeping
 * keep the current deadline, so a sleep survives being released to another node.
 */
export function applyMessage(state: State, message: Message, now: Date = new Date()): State | undefined {
  const to = nextStateCode(state.code, message.code);
  if (to === undefined) return undefined;
  let errors: readonly StateError[] = state.errors ?? [];
  if (message.error !== undefined) errors = [...errors, { timestamp: now, error: errorText(message.error) }];
  const until =
    to === "sleeping" ? (message.code === "sleep" ? message.until : (message.until ?? state.until)) : undefined;
  const next: { code: StateCode; until?: Date; errors?: readonly StateError[] } = { code: to };
  if (until !== undefined) next.until = until;
  if (errors.length > 0) next.errors = errors;
  return next;
}
