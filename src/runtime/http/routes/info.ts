/**
 * GET /info: what this node runs, in the shape of Go Metafora's httputil info handler
 * (the shape of Go Metafora's httputil info) plus each task's fencing token and handler name:
 * {frozen, name, started, tasks: [{id, started, stopped?, state?, modified?, task, token, handler}]}.
 */
import { stateLine } from "../../operator/state-view.ts";
import type { HttpServices, Route } from "../types.ts";

export interface InfoTask {
  id: string;
  started: string;
  stopped?: string;
  /** State-machine state as one line ("sleeping until …"), stateful tasks only. */
  state?: string;
  /** When the task entered that state, stateful tasks only. */
  modified?: string;
  task: { id: string; props: Record<string, unknown> };
  token: number;
  handler: string;
}

export interface Info {
  frozen: boolean;
  name: string;
  started: string;
  tasks: InfoTask[];
}

export function buildInfo(services: HttpServices): Info {
  const tasks = services.consumer.tasks().map((rt): InfoTask => {
    const entry: InfoTask = {
      id: rt.task.id,
      started: new Date(rt.started).toISOString(),
      task: { id: rt.task.id, props: rt.task.props },
      token: rt.token,
      handler: rt.handler,
    };
    if (rt.stopped !== undefined) entry.stopped = new Date(rt.stopped).toISOString();
    // Go dereferenced nil when a stateful task had not started yet: here a
    // task without a known state simply has no state fields.
    let live: ReturnType<NonNullable<HttpServices["stateOf"]>>;
    try {
      live = services.stateOf?.(rt.task.id);
    } catch {
      live = undefined;
    }
    if (live) {
      entry.state = stateLine(live.state);
      entry.modified = live.since.toISOString();
    }
    return entry;
  });
  return { frozen: services.consumer.frozen(), name: services.node, started: services.started.toISOString(), tasks };
}

export const infoRoutes: Route[] = [
  { method: "GET", path: "/info", handle: ({ services }) => ({ status: 200, json: buildInfo(services) }) },
];
