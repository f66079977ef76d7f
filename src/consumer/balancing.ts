/**
 * Balancing: the ways this node hands tasks back so the cluster evens out. The balancer runs
 * on a command or a periodic timer (balanceEvery plus jitter); membership-driven rebalancing
 * (balancers/membership.ts) runs when nodes join, leave or return. Both stop the tasks they
 * pick with reason "balance" (the handler then releases them) and report what they stopped.
 */
import {
  MembershipRebalancer,
  rebalanceLogLine,
  type RebalanceOptions,
  type RebalanceReport,
} from "../balancers/membership.ts";
import { describeError } from "../errors.ts";
import type { Emitter } from "../events.ts";
import { MAX_TIMER_DELAY } from "../internal/timers.ts";
import type { Balancer, Coordinator, Logger } from "../types.ts";
import type { ConsumerEvents, ConsumerState } from "./events.ts";

/** What balancing needs from the consumer it balances. */
export interface BalancingHost {
  readonly node: string;
  readonly log: Logger;
  readonly balancer: Balancer;
  readonly coordinator: Coordinator;
  readonly events: Emitter<ConsumerEvents>;
  readonly balanceEvery: number;
  readonly balanceJitter: number;
  readonly rebalance: RebalanceOptions | false | undefined;
  state(): ConsumerState;
  frozen(): boolean;
  runningCount(): number;
  /** Whether this running task has already been asked to stop. */
  stopping(taskId: string): boolean;
  /** Ask a running task to stop for balance; false when it is not running here. */
  stopTask(taskId: string): boolean;
}

export class Balancing {
  private readonly rebalancer: MembershipRebalancer;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private due = false;

  constructor(private readonly host: BalancingHost) {
    this.rebalancer = new MembershipRebalancer(
      {
        node: host.node,
        balancer: host.balancer,
        log: host.log,
        cluster: () => host.coordinator.cluster,
        active: () => host.state() === "running" && !host.frozen(),
        taskCount: () => host.runningCount(),
        stop: (ids) => ids.filter((id) => !host.stopping(id) && host.stopTask(id)),
        report: (report) => this.report(report),
      },
      host.rebalance,
    );
  }

  /** The node is running: arm the periodic balance and watch membership. */
  start(): void {
    this.schedule();
    this.rebalancer.start();
  }

  /** The node is stopping: no more balancing. */
  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.rebalancer.close();
  }

  /** Run the balancer now and stop what it picks (reason "balance"); returns the ids stopped. */
  async balanceNow(why: "command" | "periodic"): Promise<string[]> {
    const host = this.host;
    const log = host.log;
    const state = host.state();
    if (state === "stopping" || state === "stopped") return [];
    const before = host.runningCount();
    let ids: unknown;
    try {
      ids = await host.balancer.balance();
    } catch (err) {
      log.error(`balancer failed: ${describeError(err)}`);
      return [];
    }
    if (!Array.isArray(ids)) {
      log.error(`balancer.balance() must return an array of task ids, got ${typeof ids}`);
      return [];
    }
    const stopped: string[] = [];
    for (const id of ids) {
      if (typeof id !== "string") {
        log.warn(`balancer returned a non-string task id ${JSON.stringify(id)}; ignored`);
        continue;
      }
      if (host.stopTask(id)) stopped.push(id);
    }
    if (stopped.length > 0) this.report({ trigger: { kind: why }, released: stopped, before });
    return stopped;
  }

  /** Cycles are sequential; a tick that falls while frozen or suspended runs when that ends. */
  runDue(): void {
    if (!this.due || this.host.frozen() || this.host.state() !== "running") return;
    this.due = false;
    void this.balanceNow("periodic").finally(() => this.schedule());
  }

  private schedule(): void {
    const state = this.host.state();
    if (state === "stopping" || state === "stopped") return;
    if (!Number.isFinite(this.host.balanceEvery)) return;
    const delay = Math.min(this.host.balanceEvery + Math.random() * this.host.balanceJitter, MAX_TIMER_DELAY);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.due = true;
      this.runDue();
    }, delay);
  }

  private report(report: RebalanceReport): void {
    this.host.log.info(rebalanceLogLine(this.host.node, report, this.host.coordinator.cluster));
    this.host.events.emit("rebalanced", report);
  }
}
