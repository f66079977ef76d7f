/**
 * setTimeout cannot wait longer than 2³¹−1 ms: a larger delay fires at once. Every timer that
 * may wait long clamps to this and re-checks when it fires.
 */
export const MAX_TIMER_DELAY = 2_147_483_647;

/**
 * The promise's outcome, or a rejection with `timeoutError()` after `ms`. The timer is cleared
 * either way, so it never keeps a process alive once the promise settled.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timeoutError()), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Wait until the promise settles (either way), but never longer than `ms`. */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}

/** A cancellable timer as a promise, so races never leave timers keeping the process alive. */
export function deadlineTimer(ms: number): { promise: Promise<void>; cancel(): void } {
  let handle: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((resolve) => {
    handle = setTimeout(resolve, Math.min(ms, MAX_TIMER_DELAY));
  });
  return { promise, cancel: () => clearTimeout(handle) };
}
