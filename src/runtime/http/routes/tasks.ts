/**
 * JSON API for tasks: list, submit, delete, state-machine commands, state.
 *   GET    /api/tasks                  → {tasks: [{id, props, owner?, token?}]}
 *   POST   /api/tasks                  {id, props?, handler?} → 201 {id, props}; 409 if it exists
 *   DELETE /api/tasks/:id              → {id, deleted: true}; 404 if absent
 *   POST   /api/tasks/:id/commands     {command: pause|resume|sleep|kill, until?} → 202 ("message" = old name of "command")
 *   GET    /api/tasks/:id/state        → {id, state?: {code, until?, errors?}, since?}
 *   DELETE /api/tasks/:id/state        → {id, reset: true|false}; 409 while the task is claimed
 *   (a submit answers {warning} too when no live node can run the task; rows carry `waiting`)
 */
import { checkProps, checkTaskId, checkTaskMessage, commandField } from "../../operator/validate.ts";
import { asObject } from "../json.ts";
import type { Route } from "../types.ts";

const SUBMIT_SHAPE = '{"id": "<task id>", "props"?: {...}, "handler"?: "<handler name>"}';
const SUBMIT_FIELDS = ["id", "props", "handler"] as const;
const COMMAND_SHAPE = '{"command": "pause" | "resume" | "sleep" | "kill", "until"?: "<RFC 3339 time or duration like 10m, for sleep>"} ("message" is accepted for "command")';
const COMMAND_FIELDS = ["command", "message", "until"] as const;

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
      const b = asObject(await body(), SUBMIT_SHAPE, SUBMIT_FIELDS);
      const id = checkTaskId(b.id);
      const props = checkProps(b.props, b.handler);
      const { warning } = await operator.submitTask(id, props);
      return { status: 201, json: { id, props: props ?? {}, ...(warning ? { warning } : {}) } };
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
