/**
 * Server-side filtering and paging of `GET /api/tasks`, so a page (or a script) can look at a
 * cluster of 100,000 tasks without downloading all of them:
 *
 *   state    a state-machine code (runnable, sleeping, paused, fault, completed, failed, killed),
 *            or "running" (owned by a node) / "unclaimed" (owned by none)
 *   handler  exact handler name (props.handler, else the id's part before the first ":")
 *   node     exact owner node name
 *   q        substring of the id (case-insensitive)
 *   offset   rows to skip after filtering (default 0)
 *   limit    rows to return (1…10000; default: all)
 *
 * The answer always carries `total`: how many tasks matched before paging. Without any
 * parameter every task is returned, as the CLI expects.
 */
import { routeTask } from "../../handler.ts";
import { STATE_CODES } from "../../statemachine/types.ts";
import type { TaskInfo } from "../../types.ts";
import { HttpError } from "./json.ts";

export const MAX_LIMIT = 10_000;
const PSEUDO_STATES = ["running", "unclaimed"] as const;
const PARAMS = ["state", "handler", "node", "q", "offset", "limit"] as const;

export interface TaskQuery {
  state?: string;
  handler?: string;
  node?: string;
  q?: string;
  offset: number;
  limit?: number;
  /** True when the request named any parameter (the answer then echoes offset and limit). */
  paged: boolean;
}

/** A task row as the API lists it: the operator's row, possibly with the enriched fields. */
export interface TaskRow extends TaskInfo {
  handler?: string;
  state?: { code: string; until?: string; errors?: number };
  [field: string]: unknown;
}

export function parseTaskQuery(params: URLSearchParams): TaskQuery {
  for (const key of params.keys()) {
    if (!(PARAMS as readonly string[]).includes(key)) {
      throw new HttpError(
        400,
        `unknown query parameter ${JSON.stringify(key)} for /api/tasks; expected one of ${PARAMS.join(", ")}`,
      );
    }
  }
  const text = (name: string): string | undefined => {
    const all = params.getAll(name);
    if (all.length > 1) throw new HttpError(400, `query parameter ${name} was given ${all.length} times; give it once`);
    const v = all[0]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const state = text("state");
  if (
    state !== undefined &&
    !(STATE_CODES as readonly string[]).includes(state) &&
    !(PSEUDO_STATES as readonly string[]).includes(state)
  ) {
    throw new HttpError(
      400,
      `query parameter state=${JSON.stringify(state)} is not a state; expected one of ${[...PSEUDO_STATES, ...STATE_CODES].join(", ")}`,
    );
  }
  const offset = integer("offset", text("offset"), 0, Number.MAX_SAFE_INTEGER) ?? 0;
  const limit = integer("limit", text("limit"), 1, MAX_LIMIT);
  const query: TaskQuery = { offset, paged: [...params.keys()].length > 0 };
  if (state !== undefined) query.state = state;
  const handler = text("handler");
  if (handler !== undefined) query.handler = handler;
  const node = text("node");
  if (node !== undefined) query.node = node;
  const q = text("q");
  if (q !== undefined) query.q = q.toLowerCase();
  if (limit !== undefined) query.limit = limit;
  return query;
}

function integer(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new HttpError(
      400,
      `query parameter ${name}=${JSON.stringify(value)} must be a whole number from ${min} to ${max}`,
    );
  }
  return n;
}

/** The handler a row is routed to: the row's own field when the operator gives one. */
export function handlerOf(row: TaskRow): string {
  return typeof row.handler === "string" ? row.handler : routeTask({ id: row.id, props: row.props ?? {} });
}

/** Whether the query filters on a stored state code, which needs every row's state. */
export function needsStoredState(query: TaskQuery): boolean {
  return query.state !== undefined && !(PSEUDO_STATES as readonly string[]).includes(query.state);
}

export function matches(row: TaskRow, query: TaskQuery): boolean {
  if (query.node !== undefined && row.owner !== query.node) return false;
  if (query.q !== undefined && !row.id.toLowerCase().includes(query.q)) return false;
  if (query.handler !== undefined && handlerOf(row) !== query.handler) return false;
  if (query.state !== undefined) {
    if (query.state === "running") return row.owner !== undefined;
    if (query.state === "unclaimed") return row.owner === undefined;
    return row.state?.code === query.state;
  }
  return true;
}

/** Filter, then page: `total` counts the matches before paging. */
export function applyTaskQuery<T extends TaskRow>(rows: readonly T[], query: TaskQuery): { tasks: T[]; total: number } {
  const hits = rows.filter((r) => matches(r, query));
  const end = query.limit === undefined ? undefined : query.offset + query.limit;
  return { tasks: hits.slice(query.offset, end), total: hits.length };
}
