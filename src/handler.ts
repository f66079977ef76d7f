/**
 * Handlers: the typing helper users write them with, and the rule that routes a task to one.
 */
import type { Handler, Task, TaskProps } from "./types.ts";

/**
 * Identity function that gives a handler literal its full types: `task.props` is `P`, `ctx` is
 * a HandlerContext and the result must be "done" | "release".
 *
 *   export default defineHandler<{ url: string }>({
 *     name: "crawl",
 *     async run(task, ctx) { ... return "release"; },
 *   });
 */
export function defineHandler<P extends TaskProps = TaskProps>(h: Handler<P>): Handler<P> {
  return h;
}

/**
 * The handler name a task is routed to: its `handler` prop when that is a non-empty string,
 * else the part of its id before the first ':' (when non-empty), else the whole id.
 * "crawl:example.com" → "crawl"; {handler: "mail"} wins over the id.
 */
export function routeTask(task: Task): string {
  const named = task.props.handler;
  if (typeof named === "string" && named !== "") return named;
  const colon = task.id.indexOf(":");
  return colon > 0 ? task.id.slice(0, colon) : task.id;
}
