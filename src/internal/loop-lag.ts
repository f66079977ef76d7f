/**
 * Event-loop lag, measured as timer drift: a timer asks to fire every `interval` ms and the
 * extra delay it actually sees is the lag. A long stall matters for claims: while the loop is
 * stuck nothing renews the lease and no handler can react to an abort, so the coordinator
 * treats a stall longer than its safety margin as possible lease loss.
 */

export interface LoopLagOptions {
  /** Sampling interval in ms. */
  interval: number;
  /** Called after every sample with the lag of that sample (ms, >= 0). */
  onSample(lagMs: number): void;
  /** Do not keep the process alive for the sampler (default false). */
  unref?: boolean;
}

export class LoopLagMonitor {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private expected = 0;
  private windowMax = 0;

  constructor(private readonly options: LoopLagOptions) {}

  start(): void {
    if (this.timer) return;
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Largest lag seen since the last call (ms); resets the window. */
  takeMax(): number {
    const max = this.windowMax;
    this.windowMax = 0;
    return max;
  }

  private schedule(): void {
    this.expected = performance.now() + this.options.interval;
    this.timer = setTimeout(() => {
      const lag = Math.max(0, performance.now() - this.expected);
      if (lag > this.windowMax) this.windowMax = lag;
      this.schedule();
      this.options.onSample(lag);
    }, this.options.interval);
    if (this.options.unref) (this.timer as { unref?: () => void }).unref?.();
  }
}
