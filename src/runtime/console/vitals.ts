/**
 * A node's own health figures for the console: the last lease keepalive round trip (fed by
 * the etcd coordinator) and the worst event-loop lag of the last ten seconds (timer drift,
 * sampled here so the embedded coordinator has it too). The sampler is unref'd: it never
 * keeps a process alive.
 */
import { LoopLagMonitor } from "../../internal/loop-lag.ts";

const SAMPLE_EVERY_MS = 500;
const WINDOW_SAMPLES = 20;

export class NodeVitals {
  private keepalive: number | undefined;
  private readonly lags: number[] = [];
  private sampler: LoopLagMonitor | undefined;

  constructor(readonly leaseTtlMs?: number) {}

  start(): this {
    if (this.sampler) return this;
    const onSample = (lag: number): void => {
      this.lags.push(lag);
      if (this.lags.length > WINDOW_SAMPLES) this.lags.shift();
    };
    this.sampler = new LoopLagMonitor({ interval: SAMPLE_EVERY_MS, onSample, unref: true });
    this.sampler.start();
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
    this.sampler?.stop();
    this.sampler = undefined;
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
