/**
 * Process signals of `metafora run`:
 *   SIGTERM / SIGINT  first: graceful shutdown bounded by shutdown_timeout; second: force it
 *   SIGTSTP           freeze: stop claiming, keep running tasks (Faktory's "quiet")
 *   SIGCONT           unfreeze: claim again
 * Registration goes through node:process, which Bun and Deno both provide; a runtime that
 * cannot listen to one of these signals logs it and carries on without it.
 */
import type { Logger } from "../types.ts";

export interface SignalActions {
  /** `count` is 1 for the first stop signal, 2+ after that. */
  stop(signal: "SIGTERM" | "SIGINT", count: number): void;
  freeze(): void;
  unfreeze(): void;
}

export interface InstalledSignals {
  /** Number of SIGTERM/SIGINT received so far. */
  stopSignals(): number;
  dispose(): void;
}

export function installSignalHandlers(actions: SignalActions, log: Logger): InstalledSignals {
  let stops = 0;
  const installed: Array<[NodeJS.Signals, () => void]> = [];
  const on = (signal: NodeJS.Signals, fn: () => void): void => {
    try {
      process.on(signal, fn);
      installed.push([signal, fn]);
    } catch (err) {
      log.warn(`cannot listen for ${signal} here (${(err as Error).message}); that signal keeps its default behaviour`);
    }
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    on(signal, () => {
      stops++;
      actions.stop(signal, stops);
    });
  }
  on("SIGTSTP", () => actions.freeze());
  on("SIGCONT", () => actions.unfreeze());
  return {
    stopSignals: () => stops,
    dispose() {
      for (const [signal, fn] of installed) process.off(signal, fn);
      installed.length = 0;
    },
  };
}
