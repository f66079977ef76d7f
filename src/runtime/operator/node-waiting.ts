/** The waiting context of a running node's own HTTP API: its handlers, its back-offs. */
import type { HttpServices } from "../http/types.ts";
import type { WaitingContext } from "./waiting.ts";

export function waitingContextOf(
  services: Pick<HttpServices, "handlerNames" | "node" | "consumer" | "config">,
): WaitingContext {
  const ctx: WaitingContext = { node: services.node };
  const consumer = services.consumer;
  if (consumer.ignoredUntil) ctx.ignoredUntil = (id) => consumer.ignoredUntil?.(id);
  // Only an embedded node is the whole cluster: its handlers are every live node's handlers.
  const names = services.handlerNames;
  if (services.config.coordinator === "embedded" && names) ctx.handlers = () => names;
  return ctx;
}
