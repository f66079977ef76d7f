/** This node's figures and the cluster view, as `GET /api/nodes` (self) and the event stream send them. */
import type { HttpServices } from "../http/types.ts";
import type { ClusterFigures, NodeCount, SelfFigures } from "./types.ts";

export function selfFigures(services: HttpServices): SelfFigures {
  const c = services.console;
  return {
    name: services.node,
    version: c?.version ?? "unknown",
    coordinator: c?.coordinator ?? "unknown",
    started: services.started.toISOString(),
    frozen: services.consumer.frozen(),
    running: services.consumer.tasks().length,
    ...(c?.vitals.figures() ?? {}),
    tokenRequired: services.config.http.token !== undefined && services.config.http.token !== "",
    handlers: c?.handlerNames ?? [],
  };
}

export function nodeCounts(services: HttpServices): NodeCount[] {
  return services.console?.timeline.nodeCounts() ?? [{ name: services.node, tasks: services.consumer.tasks().length }];
}

export function clusterFigures(services: HttpServices): ClusterFigures {
  return {
    at: new Date().toISOString(),
    self: selfFigures(services),
    nodes: nodeCounts(services),
    unclaimed: services.console?.timeline.unclaimed() ?? 0,
    changes: services.console?.timeline.changes ?? 0,
  };
}
