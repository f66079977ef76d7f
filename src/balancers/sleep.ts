/**
 * SleepBalancer (as in Go Metafora): before every claim, wait 30 ms per task this node already runs, so
 * lightly loaded nodes win claim races. The wait is a timer, not a blocking sleep: the event
 * loop (handlers, commands, other timers) keeps running meanwhile. Never releases anything.
 */
import { ConfigError } from "../errors.ts";
import type { Balancer, BalancerContext, ClaimDecision } from "../types.ts";

export interface SleepBalancerOptions {
  /** Delay per running task, ms (default 30, as in Go). */
  perTask?: number;
}

export class SleepBalancer implements Balancer {
  private ctx: BalancerContext | undefined;
  private readonly perTask: number;

  constructor(opts: SleepBalancerOptions = {}) {
    const perTask = opts.perTask ?? 30;
    if (!Number.isFinite(perTask) || perTask < 0) {
      throw new ConfigError(`SleepBalancer perTask must be a finite number of ms >= 0, got ${String(opts.perTask)}`);
    }
    this.perTask = perTask;
  }

  init(ctx: BalancerContext): void {
    this.ctx = ctx;
  }

  async canClaim(): Promise<ClaimDecision> {
    const running = this.ctx ? (this.ctx.taskCount?.() ?? this.ctx.tasks().length) : 0;
    const delay = running * this.perTask;
    if (delay > 0) await new Promise<void>((resolve) => setTimeout(resolve, delay));
    return { claim: true };
  }

  balance(): string[] {
    return [];
  }
}
