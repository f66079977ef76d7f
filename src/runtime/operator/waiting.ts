/**
 * Why a task is not running, in words an operator can act on: the `waiting` field of task rows
 * in `GET /api/tasks` and `metafora tasks`, and the warning a submit answers with when no live
 * node can run the task. Kept apart from the rest of the task view so it stays one small rule.
 */
import { routeTask } from "../../handler.ts";
import type { TaskInfo } from "../../types.ts";

export interface WaitingContext {
  /**
   * Handler names the live nodes have, when the operator can know them (the embedded node
   * knows its own; an etcd operator does not know other nodes' handlers and leaves this out).
   */
  handlers?(): readonly string[];
  /** Live node names (to say "no live node" when there is none). */
  liveNodes?(): Promise<readonly string[]>;
  /** This node's name, for back-off reasons. */
  node?: string;
  /** When this node's back-off from a task ends (epoch ms), if it is backing off. */
  ignoredUntil?(taskId: string): number | undefined;
}

export type WaitingRow = TaskInfo & { waiting?: string };

/** The reason `task` is not running, or undefined when it runs or there is nothing to say. */
export function waitingReason(task: TaskInfo, ctx: WaitingContext, liveNodes?: readonly string[]): string | undefined {
  if (task.ownerError) return task.ownerError;
  if (task.owner !== undefined) return undefined;
  const handler = routeTask(task);
  if (liveNodes && liveNodes.length === 0) return `no live node; it waits until a node with handler "${handler}" joins`;
  const names = ctx.handlers?.();
  if (names && !names.includes(handler)) return noHandler(handler, names);
  const until = ctx.ignoredUntil?.(task.id);
  if (until !== undefined)
    return `backing off until ${new Date(until).toISOString()} on node ${ctx.node ?? "?"} (its handler gave it back soon after the claim, or failed)`;
  return undefined;
}

/** Rows with `waiting` added where there is a reason. */
export async function withWaiting<R extends TaskInfo>(
  rows: readonly R[],
  ctx: WaitingContext,
): Promise<Array<R & { waiting?: string }>> {
  const live = ctx.liveNodes && rows.some((r) => r.owner === undefined) ? await ctx.liveNodes() : undefined;
  return rows.map((row) => {
    const waiting = waitingReason(row, ctx, live);
    return waiting === undefined ? row : { ...row, waiting };
  });
}

/** A warning for a freshly submitted task that no live node can run, or undefined. */
export async function submitWarning(task: TaskInfo, ctx: WaitingContext): Promise<string | undefined> {
  const handler = routeTask(task);
  const names = ctx.handlers?.();
  if (names && !names.includes(handler))
    return `${noHandler(handler, names)}; it waits until a node with that handler joins`;
  if (ctx.liveNodes && (await ctx.liveNodes()).length === 0)
    return `no live node right now; it waits until a node with handler "${handler}" joins`;
  return undefined;
}

function noHandler(handler: string, names: readonly string[]): string {
  return `no live node has handler "${handler}" (handlers here: ${names.length ? names.join(", ") : "none"}); route it with --handler / props.handler, or add handlers/${handler}.ts`;
}
