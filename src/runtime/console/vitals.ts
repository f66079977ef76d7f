/**
 * A node's own health figures for the console: the last lease keepalive round trip (fed by
 * the etcd coordinator) and the worst event-loop lag of the last ten seconds (timer drift,
 * sampled here so the embedded coordinator has it too). The sampler is unref'd: it never
 * keeps a process alive.
 */
const SAMPLE_EVERY_MS = 500;
const WINDOW_SAMPLES = 20;

export class NodeVitals {
  private keepalive: number | undefined;
  private readonly lags: number[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly leaseTtlMs?: number) {}

  start(): this {
    if (this.timer) return this;
    let expected = performance.now() + SAMPLE_EVERY_MS;
    this.timer = setInterval(() => {
      const now = performance.now();
      this.lags.push(Math.max(0, now - expected));
      if (this.lags.length > WINDOW_SAMPLES) this.lags.shift();
      expected = now + SAMPLE_EVERY_MS;
    }, SAMPLE_EVERY_MS);
    (this.timer as { unref?: () => void }).unref?.();
    return this;
  }

  observeKeepalive(ms: number): void {
    if (Number.isFinite(ms) && ms >= 0) this.keepalive = ms;
  }

  figures(): { leaseTtlMs?: number; keepaliveMs?: number; loopLagMs?: number } {
    const out: { leaseTtlMs?: number; keepaliveMs?: number; loopLagMs?: number } = {};
    if (this.leaseTtlMs !== undefined) out.leaseTtlMs = this.leaseTtlMs;
    if (this.keepalive !== undefined) out.keepaliveMs = round(this.keepalive);
    if (this.lags.length > 0) out.loopLagMs = round(Math.max(...this.lags));
    return out;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
