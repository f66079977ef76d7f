/**
 * Logging. The library logs through one replaceable root logger (consola by default), so an
 * embedding program can route metafora's logs into its own logger with setLogger().
 */
import { createConsola } from "consola";
import type { Logger } from "./types.ts";

let root: Logger = createConsola({ defaults: { tag: "metafora" } });

/** Replace the logger every metafora component uses from now on. */
export function setLogger(logger: Logger): void {
  root = logger;
}

/** The current root logger. */
export function getLogger(): Logger {
  return root;
}

/** A logger that prefixes every message with `[scope]`, resolved at call time so setLogger applies. */
export function scopedLogger(scope: string, base?: Logger): Logger {
  const target = (): Logger => base ?? root;
  const prefix = `[${scope}]`;
  return {
    debug: (m, ...a) => target().debug(`${prefix} ${m}`, ...a),
    info: (m, ...a) => target().info(`${prefix} ${m}`, ...a),
    warn: (m, ...a) => target().warn(`${prefix} ${m}`, ...a),
    error: (m, ...a) => target().error(`${prefix} ${m}`, ...a),
  };
}

/** A logger that discards everything (tests, benchmarks). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
