/**
 * Checks on operator input, shared by the HTTP API and the CLI so both reject the same things
 * with the same words. Each error names the field and says what was expected.
 */
import { BUILTIN_COMMANDS } from "../../command.ts";
import { invalidNameReason } from "../../ids.ts";
import type { NodeCommand, TaskProps } from "../../types.ts";
import { parseDuration } from "../config/duration.ts";
import { OperatorError, type TaskMessageName } from "./types.ts";

/** A task id by the shared rule (src/ids.ts), the same one every coordinator applies. */
export function checkTaskId(value: unknown, field = "id"): string {
  const reason = invalidNameReason("task id", value, field);
  if (reason) throw new OperatorError("invalid", reason);
  return value as string;
}

/** A node name by the shared rule (src/ids.ts). */
export function checkNodeName(value: unknown, field = "node"): string {
  const reason = invalidNameReason("node name", value, field);
  if (reason) throw new OperatorError("invalid", reason);
  return value as string;
}

/** Task props: a JSON object, optionally with a handler name merged in as props.handler. */
export function checkProps(props: unknown, handler: unknown, field = "props"): TaskProps | undefined {
  if (props !== undefined && props !== null && (typeof props !== "object" || Array.isArray(props))) {
    throw new OperatorError("invalid", `${field} must be a JSON object such as {"url":"…"}, got ${describe(props)}`);
  }
  if (handler !== undefined && handler !== null && (typeof handler !== "string" || handler.trim() === "")) {
    throw new OperatorError("invalid", `handler must be a non-empty string (a handler name), got ${describe(handler)}`);
  }
  const base = (props ?? undefined) as TaskProps | undefined;
  if (typeof handler === "string") return { ...base, handler };
  return base;
}

/** Node command names as typed by operators ("stop-task" is accepted for stop_task). */
export const NODE_COMMAND_NAMES = ["freeze", "unfreeze", "balance", "stop-task"] as const;

/**
 * "What to do" in a request body: `command` (task and node commands alike), or the older
 * `message` (task commands used it first). Both given and different is an error.
 */
export function commandField(body: Readonly<Record<string, unknown>>): unknown {
  const { command, message } = body;
  if (command !== undefined && message !== undefined && command !== message) {
    throw new OperatorError(
      "invalid",
      `give "command" or its older name "message", not both (got command ${describe(command)} and message ${describe(message)})`,
    );
  }
  return command ?? message;
}

/** Build a node command from operator input; stop_task needs a task id. */
export function checkNodeCommand(command: unknown, parameters: unknown): NodeCommand {
  const name = typeof command === "string" ? command.trim().replace(/-/g, "_") : command;
  if (typeof name !== "string" || !(BUILTIN_COMMANDS as readonly string[]).includes(name)) {
    const shown = BUILTIN_COMMANDS.map((c) => (c === "stop_task" ? "stop_task (or stop-task)" : c)).join(", ");
    throw new OperatorError(
      "invalid",
      command === undefined
        ? `command is missing; expected one of ${shown}`
        : `command must be one of ${shown}, got ${describe(command)}`,
    );
  }
  if (
    parameters !== undefined &&
    parameters !== null &&
    (typeof parameters !== "object" || Array.isArray(parameters))
  ) {
    throw new OperatorError("invalid", `parameters must be a JSON object, got ${describe(parameters)}`);
  }
  const params = (parameters ?? {}) as Record<string, unknown>;
  if (name === "stop_task") {
    checkTaskId(params.task, "parameters.task (the task to stop)");
    return { command: name, parameters: { task: params.task } };
  }
  return Object.keys(params).length ? { command: name, parameters: params } : { command: name };
}

export const TASK_MESSAGE_NAMES = ["pause", "resume", "sleep", "kill"] as const;

/** Turn operator input into a task command; "run" is accepted as a synonym of "resume". */
export function checkTaskMessage(
  message: unknown,
  until: unknown,
  now = Date.now(),
): { message: TaskMessageName; until?: Date } {
  const name = message === "run" ? "resume" : message;
  if (typeof name !== "string" || !(TASK_MESSAGE_NAMES as readonly string[]).includes(name)) {
    const expected = `one of ${TASK_MESSAGE_NAMES.join(", ")}`;
    throw new OperatorError(
      "invalid",
      message === undefined
        ? `command (or its older name "message") is missing; expected ${expected}`
        : `command must be ${expected}, got ${describe(message)}`,
    );
  }
  if (name !== "sleep") {
    if (until !== undefined && until !== null)
      throw new OperatorError("invalid", `until is only allowed with command "sleep"`);
    return { message: name as TaskMessageName };
  }
  return { message: "sleep", until: parseUntil(until, now) };
}

/** An RFC 3339 time ("2030-01-02T15:04:05Z") or a duration from now ("10m", "1h30m"). */
export function parseUntil(value: unknown, now = Date.now()): Date {
  const expected = `until must be an RFC 3339 time such as "2030-01-02T15:04:05Z" or a duration such as "10m"`;
  if (value === undefined) throw new OperatorError("invalid", `until is missing; ${expected}`);
  if (typeof value !== "string" || value.trim() === "")
    throw new OperatorError("invalid", `${expected}, got ${describe(value)}`);
  const ms = parseDuration(value);
  if (ms !== undefined) return new Date(now + ms);
  // RFC 3339 needs a date, a time and a zone; Date.parse alone also accepts "2030" or "March 7".
  if (!/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/.test(value.trim())) {
    throw new OperatorError("invalid", `${expected}, got ${describe(value)}`);
  }
  const t = Date.parse(value.trim().replace(" ", "T"));
  if (Number.isNaN(t)) throw new OperatorError("invalid", `${expected}, got ${describe(value)} (not a valid date)`);
  return new Date(t);
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return typeof v;
  }
}
