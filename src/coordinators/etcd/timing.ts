/** Small timing helpers shared by the etcd coordinator's parts: sleeps, back-off, timeouts. */
import { withTimeout as raceTimer } from "../../internal/timers.ts";

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const RETRY_DELAYS = [100, 250, 500, 1000, 2000];

/** Back-off for retries against etcd: 100 ms doubling-ish up to 2 s. */
export function retryDelay(attempt: number): number {
  return RETRY_DELAYS[Math.min(Math.max(0, attempt), RETRY_DELAYS.length - 1)] ?? 2000;
}

/** Race a promise against a timer; rejects with `message` when the timer wins. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  return raceTimer(promise, ms, () => new Error(message));
}
