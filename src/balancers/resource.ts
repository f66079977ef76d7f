/**
 * ResourceBalancer (Go Metafora's, ported) on the current Balancer interface: claim while a resource
 * (memory, CPU, or anything a reporter measures) is below `claimLimit` percent; at or above
 * it, refuse and look at the task again later (Go claimed anyway, for fear of spinning the
 * coordinator: the ignore list's deadline removes that risk). At or above `releaseLimit`,
 * each balance releases one task: the oldest that is not already stopping.
 */
import { ConfigError, describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import type { Balancer, BalancerContext, ClaimDecision } from "../types.ts";
import type { ResourceReporter } from "./reporters.ts";

export interface ResourceBalancerOptions {
  /** When over the claim limit, reconsider a task after this many ms (default 5000). */
  retryAfter?: number;
  now?: () => number;
}

export class ResourceBalancer implements Balancer {
  private ctx: BalancerContext | undefined;
  private readonly retryAfter: number;
  private readonly now: () => number;

  constructor(
    private readonly reporter: ResourceReporter,
    readonly claimLimit: number,
    readonly releaseLimit: number,
    opts: ResourceBalancerOptions = {},
  ) {
    if (!reporter || typeof reporter.used !== "function") {
      throw new ConfigError("ResourceBalancer needs a reporter with a used() method");
    }
    const valid = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 100;
    if (!valid(claimLimit) || !valid(releaseLimit)) {
      throw new ConfigError(
        `ResourceBalancer limits must be integers from 1 to 100 (percent); got claim=${claimLimit} release=${releaseLimit}`,
      );
    }
    if (claimLimit >= releaseLimit) {
      throw new ConfigError(
        `ResourceBalancer claim limit must be below the release limit; got claim=${claimLimit} release=${releaseLimit}`,
      );
    }
    this.retryAfter = opts.retryAfter ?? 5000;
    if (!Number.isFinite(this.retryAfter) || this.retryAfter < 0) {
      throw new ConfigError(`ResourceBalancer retryAfter must be a number of ms >= 0, got ${String(opts.retryAfter)}`);
    }
    this.now = opts.now ?? Date.now;
  }

  init(ctx: BalancerContext): void {
    this.ctx = ctx;
  }

  /** Percentage of the resource in use, floored; 0 if the reporter fails (logged). */
  percentUsed(): number {
    try {
      const { used, total } = this.reporter.used();
      if (!(total > 0) || !Number.isFinite(used)) return 0;
      return Math.floor((Math.max(0, used) / total) * 100);
    } catch (err) {
      getLogger().warn(`[resource balancer] ${this.reporter.name ?? "reporter"} failed: ${describeError(err)}`);
      return 0;
    }
  }

  canClaim(): ClaimDecision {
    if (this.percentUsed() >= this.claimLimit) return { claim: false, until: this.now() + this.retryAfter };
    return { claim: true };
  }

  balance(): string[] {
    if (this.percentUsed() < this.releaseLimit || !this.ctx) return [];
    let oldest: { id: string; started: number } | undefined;
    for (const t of this.ctx.tasks()) {
      if (t.stopped !== undefined) continue;
      if (!oldest || t.started < oldest.started) oldest = { id: t.task.id, started: t.started };
    }
    return oldest ? [oldest.id] : [];
  }
}
