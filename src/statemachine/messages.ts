/**
 * Message constructors (Go's RunMessage(), SleepMessage(t), ...), validation, and the
 * human-readable forms of states and messages used in logs and the info endpoint.
 */
import { describeError } from "../errors.ts";
import { isMessageCode, type BareMessageCode, type Message, type State } from "./types.ts";

export const runMessage = (): Message => ({ code: "run" });
export const sleepMessage = (until: Date): Message => ({ code: "sleep", until });
export const pauseMessage = (): Message => ({ code: "pause" });
export const killMessage = (): Message => ({ code: "kill" });
export const errorMessage = (error: string | Error): Message => ({ code: "error", error });
export const completeMessage = (): Message => ({ code: "complete" });
export const checkpointMessage = (): Message => ({ code: "checkpoint" });
export const releaseMessage = (): Message => ({ code: "release" });

/** Error texts are stored in the state; a runaway stack must not bloat it (Go keeps 6000 B). */
const MAX_ERROR_TEXT = 8000;

/** The stored text of a message's error: the stack for Error objects, else the string. */
export function errorText(error: string | Error): string {
  const text = typeof error === "string" ? error : describeError(error);
  return text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}… (truncated)` : text;
}

function isValidDate(value: unknown): value is Date {
  return value instanceof Date && !Number.isNaN(value.getTime());
}

/**
 * Why a value is not a well-formed message, or undefined if it is one (Go's Message.Valid():
 * a known code; `sleep` with a valid `until`; `error` with a non-empty error).
 */
export function messageProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== "object")
    return `expected a message object like {code: "complete"}, got ${show(value)}`;
  const m = value as { code?: unknown; until?: unknown; error?: unknown };
  if (!isMessageCode(m.code))
    return `unknown message code ${show(m.code)}; expected one of run, sleep, pause, kill, error, complete, checkpoint, release`;
  if (m.until !== undefined && !isValidDate(m.until))
    return `message "${m.code}" has an invalid until ${show(m.until)}; expected a valid Date`;
  if (m.code === "sleep" && m.until === undefined) return `message "sleep" needs an until deadline`;
  if (m.error !== undefined && typeof m.error !== "string" && !(m.error instanceof Error)) {
    return `message "${m.code}" has an error of type ${typeof m.error}; expected a string or an Error`;
  }
  if (m.code === "error" && (m.error === undefined || m.error === "")) return `message "error" needs an error`;
  return undefined;
}

/**
 * Turn what a stateful handler returned into a message: a Message object or a bare code that
 * needs no argument. Invalid results give a problem text instead (the runner faults the task).
 */
export function normalizeHandlerResult(value: unknown): { message: Message } | { problem: string } {
  if (typeof value === "string") {
    const bare: readonly BareMessageCode[] = ["run", "pause", "kill", "complete", "checkpoint", "release"];
    if ((bare as readonly string[]).includes(value)) return { message: { code: value as BareMessageCode } };
    if (value === "sleep" || value === "error")
      return {
        problem: `handler returned "${value}" as a bare string; it needs a Message object with ${value === "sleep" ? "until" : "error"}`,
      };
    return {
      problem: `handler returned ${show(value)}; expected a Message or one of "run", "pause", "kill", "complete", "checkpoint", "release"`,
    };
  }
  if (value === undefined)
    return {
      problem:
        'handler returned nothing; a stateful handler must return the next message (for example "complete" or the command it received)',
    };
  const problem = messageProblem(value);
  return problem === undefined
    ? { message: value as Message }
    : { problem: `handler returned an invalid message: ${problem}` };
}

/** "sleep until <t>", "error: <text>", otherwise the code (Go's Message.String()). */
export function describeMessage(m: Message): string {
  if (m.code === "sleep" && m.until) return `sleep until ${m.until.toISOString()}`;
  if (m.code === "error" && m.error !== undefined)
    return `error: ${typeof m.error === "string" ? m.error : m.error.message}`;
  return m.code;
}

/** "sleeping until <t>", "fault (<n> errors)", otherwise the code (Go's State.String()). */
export function describeState(s: State): string {
  if (s.code === "sleeping" && s.until) return `sleeping until ${s.until.toISOString()}`;
  if (s.code === "fault") return `fault (${s.errors?.length ?? 0} errors)`;
  return s.code;
}

function show(value: unknown): string {
  if (value instanceof Date) return `Date(${value.getTime()})`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
