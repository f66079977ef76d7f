/** What a Consumer tells its listeners (the runtime's metrics and logs hang on these) and its states. */
import type { RebalanceReport } from "../balancers/membership.ts";
import type { NodeCommand, ShutdownReport, StopReason, Task } from "../types.ts";

/** Events the runtime's metrics and logs hang on. */
export interface ConsumerEvents {
  claimed: { task: Task; token: number; handler: string };
  /** A claim race was lost, or the task was gone. */
  claimMissed: { taskId: string };
  released: { taskId: string; reason?: StopReason; error?: unknown };
  done: { taskId: string };
  lost: { taskId: string; reason: StopReason };
  handlerError: { taskId: string; error: unknown };
  /** A quick release (see releasePacing): this node leaves the task alone until `until`. */
  releaseBackoff: { taskId: string; delay: number; repeats: number; until: number };
  suspended: { deadline: number };
  // deno-lint-ignore ban-types
  resumed: Record<string, never>;
  command: { command: NodeCommand };
  /** A rebalance (membership, drift, periodic or command) stopped tasks so they are released. */
  rebalanced: RebalanceReport;
  stopped: ShutdownReport;
}

export type ConsumerState = "new" | "starting" | "running" | "suspended" | "stopping" | "stopped";
