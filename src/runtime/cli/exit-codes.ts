/**
 * Exit codes of the metafora executable, defined once. Operators and scripts branch on these,
 * so they never change meaning (the README documents the same table).
 */
export const ExitCode = {
  /** Clean: the command succeeded, or every handler returned before the shutdown timeout. */
  ok: 0,
  /** Runtime error, or the requested operation failed. */
  failed: 1,
  /** Usage error: bad command-line arguments. */
  usage: 2,
  /** Shutdown timed out: some handlers had not returned; they are reported by task id. */
  shutdownTimedOut: 3,
  /** Shutdown forced by a second SIGTERM/SIGINT. */
  forced: 4,
  /** Unavailable: the coordinator (etcd) or the node's HTTP API could not be reached (EX_UNAVAILABLE). */
  unavailable: 69,
  /** Configuration or handler-module error (EX_CONFIG). */
  config: 78,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
