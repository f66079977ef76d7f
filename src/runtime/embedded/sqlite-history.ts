/** Task history persisted in the embedded store (see task-history.ts for what is kept). */
import type { Logger } from "../../types.ts";
import type { HistoryEvent, TaskHistory, TaskSummary } from "../history/task-history.ts";
import type { EmbeddedStore } from "./sqlite-store.ts";

/** Gone tasks whose history is kept; pruned again after this many more removals. */
const KEEP_GONE = 1000;

export class SqliteTaskHistory implements TaskHistory {
  readonly scope = "persisted" as const;
  private removals = 0;

  constructor(
    private readonly store: EmbeddedStore,
    private readonly log: Logger,
  ) {}

  record(taskId: string, event: HistoryEvent): void {
    // Not awaited: history rides along in the next group commit and never slows a claim.
    this.store
      .addHistory(taskId, event)
      .catch((err: unknown) =>
        this.log.warn(`could not record the history of task ${taskId}: ${(err as Error).message}`),
      );
    if (event.kind === "done" || event.kind === "deleted") {
      if (++this.removals >= KEEP_GONE) {
        this.removals = 0;
        this.store
          .pruneGoneHistory(KEEP_GONE)
          .catch((err: unknown) => this.log.warn(`pruning old task history failed: ${(err as Error).message}`));
      }
    }
  }

  async events(taskId: string): Promise<HistoryEvent[]> {
    return this.store.history(taskId);
  }

  async summary(taskId: string): Promise<TaskSummary | undefined> {
    return this.store.summary(taskId);
  }

  async summaries(): Promise<Map<string, TaskSummary>> {
    return this.store.summaries();
  }
}
