/**
 * Timer helpers shared by the library (not exported from any entry point).
 *
 * setTimeout fires at once for delays above 2^31 − 1 ms, so every timer clamps its delay to
 * MAX_TIMER_DELAY; a caller that must wait longer re-arms when the timer fires.
 */
export const MAX_TIMER_DELAY = 2_147_483_647;

/** A cancellable timer as a promise, so races never leave timers keeping the process alive. */
export function deadlineTimer(ms: number): { promise: Promise<void>; cancel(): void } {
  let handle: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((resolve) => {
    handle = setTimeout(resolve, Math.min(ms, MAX_TIMER_DELAY));
  });
  return { promise, cancel: () => clearTimeout(handle) };
}
