/** Liveness and readiness probes. */
import type { Route } from "../types.ts";

export const healthRoutes: Route[] = [
  {
    method: "GET",
    path: "/healthz",
    // Answering at all proves the process and its event loop are alive.
    handle: () => ({ status: 200, json: { status: "ok" } }),
  },
  {
    method: "GET",
    path: "/readyz",
    handle: ({ services }) =>
      services.isReady()
        ? { status: 200, json: { status: "ready" } }
        : {
            status: 503,
            json: { error: "not ready: the node has not yet registered with its coordinator and started watching" },
          },
  },
];
