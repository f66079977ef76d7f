/**
 * Enriching the coordinator's task list into operator rows (types.ts TaskRow): handler, state,
 * attempts, last error, next retry, checkpoint. Every source is optional, so the in-process
 * operator (which knows everything this node knows) and the etcd operator (which knows what
 * etcd holds) build rows the same way from what they have.
 */
import { routeTask } from "../../handler.ts";
import type { State } from "../../statemachine/types.ts";
import type { TaskInfo } from "../../types.ts";
import type { TaskSummary } from "../history/task-history.ts";
import type { TaskRow } from "./types.ts";

export interface RowSources {
  /** Stored states of many tasks at once (one read for the whole list). */
  states?: Map<string, State>;
  /** Live states of tasks running here (fresher than the stored one). */
  liveState?(taskId: string): State | undefined;
  summaries?: Map<string, TaskSummary>;
  checkpoints?: Map<string, { bytes: number; at: string }>;
  /** When a node backing off from the task will try it again (epoch ms). */
  retryAt?(taskId: string): number | undefined;
  now?: number;
}

export function toTaskRow(info: TaskInfo, src: RowSources): TaskRow {
  const row: { -readonly [K in keyof TaskRow]: TaskRow[K] } = { ...info, handler: safeRoute(info) };
  const state = src.liveState?.(info.id) ?? src.states?.get(info.id);
  if (state) {
    row.state = {
      code: state.code,
      ...(state.until && !Number.isNaN(state.until.getTime()) ? { until: state.until.toISOString() } : {}),
      ...(state.errors?.length ? { errors: state.errors.length } : {}),
    };
  }
  const summary = src.summaries?.get(info.id);
  if (summary) {
    row.attempts = summary.attempts;
    row.errors = summary.errors;
    if (summary.lastError) row.lastError = summary.lastError;
  }
  const now = src.now ?? Date.now();
  const retry = src.retryAt?.(info.id);
  if (retry !== undefined && retry > now && !info.owner) row.nextRetry = new Date(retry).toISOString();
  else if (state?.code === "sleeping" && row.state?.until) row.nextRetry = row.state.until;
  const checkpoint = src.checkpoints?.get(info.id);
  if (checkpoint) row.checkpoint = checkpoint;
  return row;
}

function safeRoute(info: TaskInfo): string {
  try {
    return routeTask({ id: info.id, props: info.props ?? {} });
  } catch {
    return info.id;
  }
}
