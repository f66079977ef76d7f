/** Task rows as `GET /api/tasks` lists them (optional fields appear when the node knows them). */
export interface TaskRow {
  id: string;
  props: Record<string, unknown>;
  owner?: string;
  token?: number;
  handler?: string;
  state?: { code: string; until?: string; errors?: number };
  since?: string;
  attempts?: number;
  lastError?: { at: string; message: string };
  nextRetry?: string;
  waiting?: string;
  checkpoint?: { bytes: number; at: string };
  propsError?: string;
}

export interface TaskPage {
  tasks: TaskRow[];
  total: number;
  offset?: number;
  limit?: number;
}

export interface HistoryEntry {
  at: string;
  kind: string;
  node?: string;
  token?: number;
  reason?: string;
  message?: string;
}

export interface Filters {
  state: string;
  handler: string;
  node: string;
  q: string;
}

export const STATE_FILTERS = [
  "running",
  "unclaimed",
  "runnable",
  "sleeping",
  "paused",
  "fault",
  "completed",
  "failed",
  "killed",
];
