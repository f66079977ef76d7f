/**
 * JSON API for tasks: list, submit, delete, state-machine commands, state.
 *   GET    /api/tasks                  → {tasks: [{id, props, owner?, token?, handler, state?, attempts?, lastError?, nextRetry?, checkpoint?}], total}
 *          ?state&handler&node&q&offset&limit filter and page on the server (task-query.ts):
 *                                         → {tasks, total, offset, limit?}
 *   GET    /api/tasks/:id              → {task: <row>, history: [{at, kind, node?, token?, reason?, message?}], historyNote?}
 *   POST   /api/tasks                  {id, props?, handler?} → 201 {id, props}; 409 if it exists
 *   POST   /api/tasks                  {tasks: [{id, props?, handler?}, …]} (bulk, ≤ 10,000) →
 *                                      200 {results: [{id, result: created|exists}], created, exists}
 *   DELETE /api/tasks/:id              → {id, deleted: true}; 404 if absent
 *   POST   /api/tasks/:id/commands     {command: pause|resume|sleep|kill, until?} → 202 ("message" = old name of "command")
 *   GET    /api/tasks/:id/state        → {id, state?: {code, until?, errors?}, since?}
 *   DELETE /api/tasks/:id/state        → {id, reset: true|false}; 409 while the task is claimed
 *   (a submit answers {warning} too when no live node can run the task; rows carry `waiting`)
 */
import { checkSubmissions, countResults, MAX_BULK_ITEMS } from "../../operator/bulk-submit.ts";
import { OperatorError } from "../../operator/types.ts";
import { checkProps, checkTaskId, checkTaskMessage, commandField } from "../../operator/validate.ts";
import { toStateView } from "../../operator/state-view.ts";
import { asObject } from "../json.ts";
import { applyTaskQuery, handlerOf, needsStoredState, parseTaskQuery, type TaskRow } from "../task-query.ts";
import type { HttpServices, Route } from "../types.ts";

const SUBMIT_SHAPE =
  '{"id": "<task id>", "props"?: {...}, "handler"?: "<handler name>"} or {"tasks": [{"id": ...}, ...]}';
const SUBMIT_FIELDS = ["id", "props", "handler", "tasks"] as const;
const COMMAND_SHAPE =
  '{"command": "pause" | "resume" | "sleep" | "kill", "until"?: "<RFC 3339 time or duration like 10m, for sleep>"} ("message" is accepted for "command")';
const COMMAND_FIELDS = ["command", "message", "until"] as const;

export const taskRoutes: Route[] = [
  {
    method: "GET",
    path: "/api/tasks",
    async handle({ operator, services, url }) {
      const query = parseTaskQuery(url.searchParams);
      const rows = (await operator.tasks()) as TaskRow[];
      if (!query.paged) return { status: 200, json: { tasks: rows, total: rows.length } };
      // Rows without a handler field come from an operator that does not enrich them with
      // state; then states are read here, for every row only when the filter needs them.
      const bare = rows.length > 0 && !rows.some((r) => typeof r.handler === "string");
      const everyState = bare && needsStoredState(query);
      const pool = everyState ? await withStates(services, rows) : rows;
      const { tasks, total } = applyTaskQuery(pool, query);
      const page = withSince(services, bare && !everyState ? await withStates(services, tasks) : tasks);
      return {
        status: 200,
        json: {
          tasks: page,
          total,
          offset: query.offset,
          ...(query.limit === undefined ? {} : { limit: query.limit }),
        },
      };
    },
  },
  {
    method: "POST",
    path: "/api/tasks",
    changesState: true,
    async handle({ operator, body }) {
      const b = asObject(await body(), SUBMIT_SHAPE, SUBMIT_FIELDS);
      if (b.tasks !== undefined) {
        if (!Array.isArray(b.tasks))
          throw new OperatorError("invalid", `tasks must be an array of {"id": ...} objects, got ${typeof b.tasks}`);
        if (b.id !== undefined)
          throw new OperatorError("invalid", `send either {"id": ...} (one task) or {"tasks": [...]} (many), not both`);
        if (b.tasks.length > MAX_BULK_ITEMS) {
          throw new OperatorError(
            "invalid",
            `tasks has ${b.tasks.length} items; at most ${MAX_BULK_ITEMS} per request`,
          );
        }
        const results = await operator.submitTasks(checkSubmissions(b.tasks, (i) => `tasks[${i}]`));
        return { status: 200, json: { results, ...countResults(results) } };
      }
      const id = checkTaskId(b.id);
      const props = checkProps(b.props, b.handler);
      const { warning } = await operator.submitTask(id, props);
      return { status: 201, json: { id, props: props ?? {}, ...(warning ? { warning } : {}) } };
    },
  },
  {
    method: "GET",
    path: "/api/tasks/:id",
    async handle({ operator, params }) {
      return { status: 200, json: await operator.task(checkTaskId(params.id)) };
    },
  },
  {
    method: "DELETE",
    path: "/api/tasks/:id",
    changesState: true,
    async handle({ operator, params }) {
      const id = checkTaskId(params.id);
      await operator.deleteTask(id);
      return { status: 200, json: { id, deleted: true } };
    },
  },
  {
    method: "POST",
    path: "/api/tasks/:id/commands",
    changesState: true,
    async handle({ operator, params, body }) {
      const id = checkTaskId(params.id);
      const b = asObject(await body(), COMMAND_SHAPE, COMMAND_FIELDS);
      const request = checkTaskMessage(commandField(b), b.until);
      await operator.taskCommand(id, request);
      const until = request.until ? { until: request.until.toISOString() } : {};
      return { status: 202, json: { id, command: request.message, message: request.message, ...until } };
    },
  },
  {
    method: "DELETE",
    path: "/api/tasks/:id/state",
    changesState: true,
    async handle({ operator, params }) {
      const id = checkTaskId(params.id);
      return { status: 200, json: { id, reset: await operator.resetState(id) } };
    },
  },
  {
    method: "GET",
    path: "/api/tasks/:id/state",
    async handle({ operator, params }) {
      return { status: 200, json: await operator.taskState(checkTaskId(params.id)) };
    },
  },
];

/**
 * Add handler, state and since to rows from an operator that lists only id, props, owner and
 * token: the live state where the task runs here, else the stored one (read without creating
 * one, and without the per-task existence check taskState() makes, which lists every task).
 */
async function withStates(services: HttpServices, rows: TaskRow[]): Promise<TaskRow[]> {
  const store = services.stateStore;
  const read = services.readState ?? (store?.get ? async (id: string) => store.get?.(id) : undefined);
  const out: TaskRow[] = new Array(rows.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < rows.length) {
      const i = next++;
      const row = rows[i]!;
      const enriched: TaskRow = { ...row, handler: handlerOf(row) };
      try {
        const live = services.stateOf?.(row.id);
        const state = live?.state ?? (await read?.(row.id));
        if (state) {
          const view = toStateView(state);
          enriched.state = {
            code: view.code,
            ...(view.until ? { until: view.until } : {}),
            ...(view.errors?.length ? { errors: view.errors.length } : {}),
          };
        }
        if (live) enriched.since = live.since.toISOString();
      } catch {
        // Unreadable right now: the row simply has no state.
      }
      out[i] = enriched;
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, rows.length) }, worker));
  return out;
}

/** Rows of tasks running on this node without a `since` get the time their handler started. */
function withSince(services: HttpServices, rows: TaskRow[]): TaskRow[] {
  const started = new Map(services.consumer.tasks().map((rt) => [rt.task.id, rt.started]));
  return rows.map((row) => {
    const at = started.get(row.id);
    return row.since === undefined && at !== undefined ? { ...row, since: new Date(at).toISOString() } : row;
  });
}
