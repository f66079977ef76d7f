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
}

/** One JSON object per line: time, level, tag, msg (+ error stacks under "error"). */
export function jsonLineReporter(stream: { write(chunk: string): unknown }): ConsolaReporter {
  return {
    log(obj: LogObject) {
      const errors: string[] = [];
      const rest: unknown[] = [];
      for (const arg of obj.args) {
        if (arg instanceof Error) errors.push(arg.stack ?? `${arg.name}: ${arg.message}`);
        else rest.push(arg);
      }
      const line: Record<string, unknown> = {
        time: obj.date.toISOString(),
        level: levelName(obj.type),
        ...(obj.tag ? { tag: obj.tag } : {}),
        msg: format(...(rest as [unknown, ...unknown[]])),
      };
      if (errors.length > 0) line.error = errors.join("\n");
      let text: string;
      try {
        text = JSON.stringify(line);
      } catch {
        text = JSON.stringify({ time: line.time, level: line.level, msg: String(line.msg) });
      }
      stream.write(text + "\n");
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
      ? createConsola({ level, reporters: [jsonLineReporter(stream)], throttle: 0, defaults: { tag: "metafora" } })
      : createConsola({
          level,
          throttle: 0,
          // consola writes info to stdout by default; keep every log line on stderr.
          stdout: process.stderr,
          stderr: process.stderr,
          defaults: { tag: "metafora" },
        });
  setLogger(logger as Logger);
  return logger;
}
