/**
 * Logging of the executable: consola, readable on a terminal, JSON lines otherwise (or with
 * --log-format json), level from config/env/flag. Logs go to stderr so stdout stays clean for
 * command output. The library is pointed at the same logger with setLogger().
 */
import { format } from "node:util";
import { createConsola, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola";
import { setLogger } from "../log.ts";
import type { Logger } from "../types.ts";
import type { LogFormat, LogLevel } from "./config/schema.ts";

const CONSOLA_LEVEL: Record<LogLevel, number> = { error: 0, warn: 1, info: 3, debug: 4 };

export interface LogSetup {
  level: LogLevel;
  format: LogFormat;
  /** Where lines go. Default process.stderr. */
  stream?: { write(chunk: string): unknown };
  /** This node's name: a `node` field on every JSON line. */
  node?: string;
}

/**
 * Handler of each task running here, so JSON lines about a task carry `handler` too (fed from
 * the consumer's claimed/finished events by run.ts).
 */
export const taskHandlers = new Map<string, string>();

/**
 * Scopes the library puts in front of messages ("[task report:1] …", "[node n1] …"), lifted
 * into fields so log pipelines can filter on them without parsing text.
 */
const SCOPE = /^\[(task|node) ([^\]]+)\] /;

function liftScopes(message: string, line: Record<string, unknown>): string {
  let rest = message;
  for (let m = SCOPE.exec(rest); m; m = SCOPE.exec(rest)) {
    line[m[1]!] = m[2]!;
    rest = rest.slice(m[0].length);
  }
  const task = line.task;
  if (typeof task === "string" && line.handler === undefined) {
    const handler = taskHandlers.get(task);
    if (handler !== undefined) line.handler = handler;
  }
  return rest;
}

/** A message's arguments: error stacks (printed apart) and everything else. */
function splitErrors(args: readonly unknown[]): { errors: string[]; rest: unknown[] } {
  const errors: string[] = [];
  const rest: unknown[] = [];
  for (const arg of args) {
    if (arg instanceof Error) errors.push(arg.stack ?? `${arg.name}: ${arg.message}`);
    else rest.push(arg);
  }
  return { errors, rest };
}

/** One JSON object per line: time, level, tag, node, task, handler, msg (+ error stacks under "error"). */
export function jsonLineReporter(stream: { write(chunk: string): unknown }, node?: string): ConsolaReporter {
  return {
    log(obj: LogObject) {
      const { errors, rest } = splitErrors(obj.args);
      const line: Record<string, unknown> = {
        time: obj.date.toISOString(),
        level: levelName(obj.type),
        ...(obj.tag ? { tag: obj.tag } : {}),
        ...(node !== undefined ? { node } : {}),
      };
      line.msg = liftScopes(format(...(rest as [unknown, ...unknown[]])), line);
      if (errors.length > 0) line.error = errors.join("\n");
      let text: string;
      try {
        text = JSON.stringify(line);
      } catch {
        text = JSON.stringify({ time: line.time, level: line.level, msg: String(line.msg) });
      }
      stream.write(`${text}\n`);
    },
  };
}

function levelName(type: LogObject["type"]): string {
  switch (type) {
    case "fatal":
    case "error":
    case "fail":
      return "error";
    case "warn":
      return "warn";
    case "debug":
    case "trace":
    case "verbose":
      return "debug";
    default:
      return "info";
  }
}

/** Build the runtime's logger and make it the library's root logger. */
export function setupLogging(setup: LogSetup): ConsolaInstance {
  const stream = setup.stream ?? process.stderr;
  const level = CONSOLA_LEVEL[setup.level];
  const logger =
    setup.format === "json"
      ? createConsola({
          level,
          reporters: [jsonLineReporter(stream, setup.node)],
          throttle: 0,
          defaults: { tag: "metafora" },
        })
      : createConsola({
          level,
          reporters: [prettyReporter(stream, isTerminal(stream))],
          throttle: 0,
          defaults: { tag: "metafora" },
        });
  setLogger(logger as Logger);
  return logger;
}

function isTerminal(stream: { write(chunk: string): unknown }): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

const LEVEL_COLOR: Record<string, string> = {
  error: "\x1b[31m",
  warn: "\x1b[33m",
  info: "\x1b[36m",
  debug: "\x1b[90m",
};

/**
 * One line per message for people: UTC time (logs of several nodes line up), level, message;
 * error stacks indented below. Colours only on a terminal.
 */
export function prettyReporter(stream: { write(chunk: string): unknown }, colors: boolean): ConsolaReporter {
  return {
    log(obj: LogObject) {
      const { errors, rest } = splitErrors(obj.args);
      const level = levelName(obj.type);
      const time = obj.date.toISOString();
      const tag = level.toUpperCase().padEnd(5);
      const head = colors ? `\x1b[90m${time}\x1b[0m ${LEVEL_COLOR[level] ?? ""}${tag}\x1b[0m` : `${time} ${tag}`;
      let text = `${head} ${format(...(rest as [unknown, ...unknown[]]))}\n`;
      for (const e of errors) text += `${e.replace(/^/gm, "    ")}\n`;
      stream.write(text);
    },
  };
}
