/**
 * JSON for states and messages, compatible with Go Metafora's (docs/wire-format.md), so Go tools read our
 * state and commands and we read theirs.
 *
 *   State:   {"state":"sleeping","until":"2026-11-22T14:40:02.540968101Z","errors":[{"timestamp":"…","error":"boom"}]}
 *   Message: {"message":"sleep","until":"…"}   {"message":"error","error_text":"text"}
 *
 * Times are RFC 3339. We read up to 9 fractional digits (Go writes nanoseconds; a Date keeps
 * milliseconds, the rest is dropped) and write milliseconds with trailing zeros trimmed, as
 * Go's RFC3339Nano does. Decoders are lenient where Go is (unknown fields, null for absent)
 * and strict about types; they throw an Error naming the problem, never crash on input.
 */
import { goJson } from "../gojson.ts";
import { messageProblem } from "./messages.ts";
import { isMessageCode, isStateCode, type Message, type State, type StateError } from "./types.ts";

/** Text for an error that Go encoded: Go marshals an `error` value as `{}`, losing the text. */
export const UNKNOWN_GO_ERROR = "(unknown error from Go client: Go encodes errors as {})";

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** RFC 3339 in UTC with milliseconds, trailing zeros trimmed: "2026-11-22T15:30:02.53Z". */
export function formatTime(date: Date): string {
  const iso = date.toISOString(); // always …ss.mmmZ
  return iso.replace(/\.(\d*?)0*Z$/, (_m, digits: string) => (digits ? `.${digits}Z` : "Z"));
}

/** Parse RFC 3339 with 0–9 fractional digits and Z or ±hh:mm. Throws on anything else. */
export function parseTime(text: string): Date {
  const m = RFC3339.exec(text);
  if (!m)
    throw new TypeError(`time ${JSON.stringify(text)} is not RFC 3339 (expected like "2026-11-22T15:30:02.538146Z")`);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = m[7] ? Number(m[7].padEnd(3, "0").slice(0, 3)) : 0;
  const date = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0–99 to 1900–1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, ms);
  if (
    date.getUTCFullYear() !== year ||
    date.getUTCMonth() !== month - 1 ||
    date.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    throw new TypeError(`time ${JSON.stringify(text)} has an out-of-range field`);
  }
  if (m[9]) {
    const offsetHours = Number(m[10]);
    const offsetMinutes = Number(m[11]);
    if (offsetHours > 23 || offsetMinutes > 59)
      throw new TypeError(`time ${JSON.stringify(text)} has an out-of-range offset`);
    const offset = (offsetHours * 60 + offsetMinutes) * 60_000;
    date.setTime(date.getTime() - (m[9] === "+" ? offset : -offset));
  }
  return date;
}

export function encodeState(state: State): string {
  // Field order is Go's struct order: state, until, errors (omitempty on the last two).
  const out: Record<string, unknown> = { state: state.code };
  if (state.until) out.until = formatTime(state.until);
  if (state.errors && state.errors.length > 0) {
    out.errors = state.errors.map((e) => ({ timestamp: formatTime(e.timestamp), error: e.error }));
  }
  return goJson(out);
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new TypeError(`${what} is not JSON (${(err as Error).message}): ${preview(text)}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new TypeError(`${what} is not a JSON object: ${preview(text)}`);
  return value as Record<string, unknown>;
}

function optionalTime(value: unknown, what: string): Date | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new TypeError(`${what} is ${typeof value}; expected an RFC 3339 string`);
  return parseTime(value);
}

export function decodeState(text: string): State {
  const raw = parseObject(text, "state");
  if (!isStateCode(raw.state)) {
    throw new TypeError(
      `state has code ${JSON.stringify(raw.state)}; expected one of runnable, sleeping, paused, fault, completed, failed, killed`,
    );
  }
  const until = optionalTime(raw.until, "state.until");
  let errors: StateError[] | undefined;
  if (raw.errors !== undefined && raw.errors !== null) {
    if (!Array.isArray(raw.errors)) throw new TypeError(`state.errors is ${typeof raw.errors}; expected an array`);
    errors = raw.errors.map((e: unknown, i) => {
      if (e === null || typeof e !== "object") throw new TypeError(`state.errors[${i}] is not an object`);
      const entry = e as { timestamp?: unknown; error?: unknown };
      if (typeof entry.error !== "string")
        throw new TypeError(`state.errors[${i}].error is ${typeof entry.error}; expected a string`);
      // Go decodes a missing timestamp as its zero time (year 1); keep that rather than fail.
      const timestamp =
        optionalTime(entry.timestamp, `state.errors[${i}].timestamp`) ?? parseTime("0001-01-01T00:00:00Z");
      return { timestamp, error: entry.error };
    });
  }
  const state: { code: State["code"]; until?: Date; errors?: StateError[] } = { code: raw.state };
  if (until) state.until = until;
  if (errors && errors.length > 0) state.errors = errors;
  return state;
}

/**
 * Encode a command so that a Go node can always decode it. Go's `error` field holds an error
 * interface: Go writes it as {} and fails to decode anything there but null, and a command it
 * cannot decode is never taken. So the `error` field is never written; an error command
 * carries its text in `error_text`, which Go ignores (it decodes the command as an error
 * without a cause, finds it invalid and drops it) and our nodes read. Every other message
 * round-trips with Go unchanged.
 */
export function encodeMessage(message: Message): string {
  const problem = messageProblem(message);
  if (problem) throw new TypeError(`cannot encode command: ${problem}`);
  const out: Record<string, unknown> = { message: message.code };
  if (message.until) out.until = formatTime(message.until);
  if (message.error !== undefined)
    out.error_text = typeof message.error === "string" ? message.error : message.error.message;
  return goJson(out);
}

/**
 * Decode a command; throws if it is not JSON or not a well-formed message. The error text is
 * read from `error_text` (ours), else from `error`: a string (what our nodes wrote before
 * `error_text`) or Go's {} (text lost, see UNKNOWN_GO_ERROR).
 */
export function decodeMessage(text: string): Message {
  const raw = parseObject(text, "command");
  if (!isMessageCode(raw.message)) {
    throw new TypeError(
      `command has message ${JSON.stringify(raw.message)}; expected one of run, sleep, pause, kill, error, complete, checkpoint, release`,
    );
  }
  const until = optionalTime(raw.until, "command.until");
  let error: string | undefined;
  if (raw.error_text !== undefined && raw.error_text !== null && typeof raw.error_text !== "string") {
    throw new TypeError(`command.error_text is ${typeof raw.error_text}; expected a string`);
  }
  if (typeof raw.error_text === "string") error = raw.error_text;
  else if (typeof raw.error === "string") error = raw.error;
  else if (raw.error !== null && typeof raw.error === "object") error = UNKNOWN_GO_ERROR;
  else if (raw.error !== undefined && raw.error !== null)
    throw new TypeError(`command.error is ${typeof raw.error}; expected a string`);
  const message: { code: Message["code"]; until?: Date; error?: string } = { code: raw.message };
  if (until) message.until = until;
  if (error !== undefined) message.error = error;
  const problem = messageProblem(message);
  if (problem) throw new TypeError(`command is not a valid message: ${problem}`);
  return message;
}

function preview(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}
