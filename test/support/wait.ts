/**
 * Waiting for conditions with a deadline: the only way tests wait. A failed wait throws with
 * the description and the last observed value, so the failure says what did not happen.
 */

export interface WaitOptions {
  /** Give up after this many ms (default 10 s: generous for a loaded 2-core machine). */
  timeout?: number;
  /** Poll interval in ms (default 10). */
  interval?: number;
}

/**
 * Poll `probe` until it returns a truthy value (or a promise of one); resolves with that value.
 * Throws `timed out after Nms waiting for <what>` otherwise.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<NonNullable<T>> {
  const timeout = opts.timeout ?? 10_000;
  const interval = opts.interval ?? 10;
  const deadline = Date.now() + timeout;
  let last: unknown;
  let lastError: unknown;
  for (;;) {
    try {
      last = await probe();
      if (last) return last as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError ? `; last error: ${String(lastError)}` : `; last value: ${safeString(last)}`;
      throw new Error(`timed out after ${timeout}ms waiting for ${what}${detail}`);
    }
    await sleep(interval);
  }
}

/**
 * Assert that `probe` stays falsy for `ms` milliseconds (for "nothing happens" checks, e.g. a
 * second node must not receive a claimed task). Throws as soon as it turns truthy.
 */
export async function staysFalse(
  what: string,
  probe: () => unknown | Promise<unknown>,
  ms: number,
  interval = 10,
): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await probe();
    if (v) throw new Error(`expected ${what} to stay false for ${ms}ms, but it became ${safeString(v)}`);
    await sleep(interval);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve exposed, for handlers that tests unblock. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function safeString(v: unknown): string {
  try {
    return typeof v === "string" ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    return String(v);
  }
}
