/** Small timing helpers shared by the etcd coordinator's parts: sleeps, back-off, timeouts. */

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const RETRY_DELAYS = [100, 250, 500, 1000, 2000];

/** Back-off for retries against etcd: 100 ms doubling-ish up to 2 s. */
export function retryDelay(attempt: number): number {
  return RETRY_DELAYS[Math.min(Math.max(0, attempt), RETRY_DELAYS.length - 1)] ?? 2000;
}

/** Race a promise against a timer; the timer is cleared either way. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** One line for an expected failure (etcd unreachable, timeouts): the message, no stack. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return `${err.name === "Error" ? "" : `${err.name}: `}${err.message.split("\n")[0]}`;
  return String(err);
}
