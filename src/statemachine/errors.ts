/** Errors of the state machine. */
import { MetaforaError } from "../errors.ts";

/**
 * Loading or storing a task's state failed. The stateful handler rejects with it, so the
 * consumer releases the task and backs off before retrying it; the task is never deleted
 * (Go unschedules it: marks it done).
 */
export class StateStoreError extends MetaforaError {
  override name = "StateStoreError";
  constructor(
    readonly operation: "load" | "store",
    readonly taskId: string,
    override readonly cause: unknown,
  ) {
    super(
      `state ${operation} for task "${taskId}" failed: ${cause instanceof Error ? cause.message : String(cause)}; the task is released to be retried`,
    );
  }
}
