/** Prometheus scrape endpoint. */
import type { Route } from "../types.ts";

export const metricsRoutes: Route[] = [
  {
    method: "GET",
    path: "/metrics",
    async handle({ services }) {
      return { status: 200, text: await services.metrics.text(), contentType: services.metrics.contentType };
    },
  },
];
