/**
 * JSON API for tasks: list, submit, delete, state-machine commands, state.
 *   GET    /api/tasks                  → {tasks: [{id, props, owner?, token?}]}
 *   POST   /api/tasks                  {id, props?, handler?} → 201 {id, props}; 409 if it exists
 *   POST   /api/tasks                  {tasks: [{id, props?, handler?}, …]} (bulk, ≤ 10,000) →
 *                                      200 {results: [{id, result: created|exists}], created, exists}
 *   DELETE /api/tasks/:id              → {id, deleted: true}; 404 if absent
 *   POST   /api/tasks/:id/commands     {message: pause|resume|sleep|kill, until?} → 202
 *   GET    /api/tasks/:id/state        → {id, state?: {code, until?, errors?}, since?}
 */
import { checkSubmissions, countResults, MAX_BULK_ITEMS } from "../../operator/bulk-submit.ts";
import { OperatorError } from "../../operator/types.ts";
import { checkProps, checkTaskId, checkTaskMessage } from "../../operator/validate.ts";
import { asObject } from "../json.ts";
import type { Route } from "../types.ts";

const SUBMIT_SHAPE = '{"id": "<task id>", "props"?: {...}, "handler"?: "<handler name>"} or {"tasks": [{"id": ...}, ...]}';
const COMMAND_SHAPE = '{"message": "pause" | "resume" | "sleep" | "kill", "until"?: "<RFC 3339 time or duration like 10m, for sleep>"}';

export const taskRoutes: Route[] = [
  {
    method: "GET",
    path: "/api/tasks",
    async handle({ operator }) {
      return { status: 200, json: { tasks: await operator.tasks() } };
    },
  },
  {
    method: "POST",
    path: "/api/tasks",
    changesState: true,
    async handle({ operator, body }) {
      const b = asObject(await body(), SUBMIT_SHAPE);
      if (b.tasks !== undefined) {
        if (!Array.isArray(b.tasks)) throw new OperatorError("invalid", `tasks must be an array of {"id": ...} objects, got ${typeof b.tasks}`);
        if (b.id !== undefined) throw new OperatorError("invalid", `send either {"id": ...} (one task) or {"tasks": [...]} (many), not both`);
        if (b.tasks.length > MAX_BULK_ITEMS) {
          throw new OperatorError("invalid", `tasks has ${b.tasks.length} items; at most ${MAX_BULK_ITEMS} per request`);
        }
        const results = await operator.submitTasks(checkSubmissions(b.tasks, (i) => `tasks[${i}]`));
        return { status: 200, json: { results, ...countResults(results) } };
      }
      const id = checkTaskId(b.id);
      const props = checkProps(b.props, b.handler);
      await operator.submitTask(id, props);
      return { status: 201, json: { id, props: props ?? {} } };
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
      const b = asObject(await body(), COMMAND_SHAPE);
      const request = checkTaskMessage(b.message, b.until);
      await operator.taskCommand(id, request);
      return { status: 202, json: { id, message: request.message, ...(request.until ? { until: request.until.toISOString() } : {}) } };
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
