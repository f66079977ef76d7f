/**
 * What a faulted task does next. The default is Go's rule, "too many errors within
 * a window → failed, otherwise sleep and retry", with the retry delay growing exponentially
 * (with jitter, so a fleet of tasks failing together does not retry in lockstep) instead of
 * Go's fixed 10 minutes. Every number is configurable; a custom policy is just a function.
 */
import { errorMessage, sleepMessage } from "./messages.ts";
import type { ErrorPolicy, StateError } from "./types.ts";

export interface BackoffOptions {
  /** Delay after the first error, ms (default 30 s). */
  initial: number;
  /** Largest delay, ms (default 10 min, Go's fixed delay). */
  max: number;
  /** Growth factor per recent error (default 2). */
  multiplier: number;
  /** Fraction of the delay removed at random, 0..1 (default 0.2): delay × (1 − jitter × rand). */
  jitter: number;
}

export interface DefaultErrorPolicyOptions {
  /** Errors within `window` that fail the task; also how many errors are kept (default 8). */
  maxErrors?: number;
  /** Window in ms in which errors count (default 4 h). */
  window?: number;
  backoff?: Partial<BackoffOptions>;
  /** Clock and randomness, replaceable for tests. */
  now?: () => number;
  random?: () => number;
}

export const DEFAULT_MAX_ERRORS = 8;
export const DEFAULT_ERROR_WINDOW = 4 * 60 * 60 * 1000;
export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = {
  initial: 30_000,
  max: 10 * 60_000,
  multiplier: 2,
  jitter: 0.2,
};

function requireNumber(name: string, value: number, ok: (v: number) => boolean, expected: string): number {
  if (typeof value !== "number" || !ok(value))
    throw new RangeError(`error policy: ${name} is ${String(value)}; expected ${expected}`);
  return value;
}

/** The retry delay after `strikes` recent errors (1 = first error), before jitter is applied. */
export function backoffDelay(strikes: number, b: BackoffOptions): number {
  const exponent = Math.max(strikes, 1) - 1;
  return Math.min(b.max, b.initial * b.multiplier ** exponent);
}

export function defaultErrorPolicy(opts: DefaultErrorPolicyOptions = {}): ErrorPolicy {
  const maxErrors = requireNumber(
    "maxErrors",
    opts.maxErrors ?? DEFAULT_MAX_ERRORS,
    (v) => Number.isInteger(v) && v >= 1,
    "an integer ≥ 1",
  );
  const window = requireNumber(
    "window",
    opts.window ?? DEFAULT_ERROR_WINDOW,
    (v) => Number.isFinite(v) && v > 0,
    "a number of ms > 0",
  );
  const backoff: BackoffOptions = { ...DEFAULT_BACKOFF, ...opts.backoff };
  requireNumber("backoff.initial", backoff.initial, (v) => Number.isFinite(v) && v >= 0, "a number of ms ≥ 0");
  requireNumber(
    "backoff.max",
    backoff.max,
    (v) => Number.isFinite(v) && v >= backoff.initial,
    `a number of ms ≥ backoff.initial (${backoff.initial})`,
  );
  requireNumber("backoff.multiplier", backoff.multiplier, (v) => Number.isFinite(v) && v >= 1, "a number ≥ 1");
  requireNumber("backoff.jitter", backoff.jitter, (v) => v >= 0 && v <= 1, "a fraction from 0 to 1");
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;

  return (_task, errors: readonly StateError[]) => {
    const t = now();
    const cutoff = t - window;
    // Counted over the whole history before trimming, as Go does.
    const strikes = errors.filter((e) => e.timestamp.getTime() > cutoff).length;
    const kept = errors.slice(-maxErrors);
    if (strikes >= maxErrors) {
      return {
        message: errorMessage(`exceeded error rate: ${strikes} errors within ${formatMs(window)}`),
        errors: kept,
      };
    }
    const delay = backoffDelay(strikes, backoff) * (1 - backoff.jitter * random());
    return { message: sleepMessage(new Date(t + Math.round(delay))), errors: kept };
  };
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
