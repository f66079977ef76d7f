/**
 * Makes `import ... from "metafora"` (and its subpaths) in handler files resolve to this very
 * runtime, from any folder and with no node_modules, both from source and inside the compiled
 * binary. Handlers then share the runtime's module instances (so `instanceof StopError` holds).
 *
 * Bun: a runtime plugin registers virtual modules "metafora" (the library's root entry,
 * src/index.ts), "metafora/statemachine" and "metafora/etcd". They must be registered before
 * any handler is imported. "metafora/etcd" is loaded on first import only, so a node on the
 * embedded coordinator never loads the etcd client.
 * Deno: src/runtime/handlers/deno-import-map.json maps the same names; nothing to do here.
 */
import * as library from "../../index.ts";
import * as statemachine from "../../statemachine/index.ts";

type VirtualModule = { exports: Record<string, unknown>; loader: "object" };

/** The part of Bun's plugin API used here (declared locally so Deno type-checks this file). */
interface BunPluginHost {
  plugin(plugin: {
    name: string;
    setup(build: { module(specifier: string, load: () => VirtualModule | Promise<VirtualModule>): unknown }): void;
  }): unknown;
}

let registered = false;

/** Idempotent. Returns how "metafora" resolves, for the start-up log. */
export function registerMetaforaModule(): "bun-plugin" | "import-map" {
  const bun = (globalThis as { Bun?: BunPluginHost }).Bun;
  if (!bun) return "import-map";
  if (!registered) {
    registered = true;
    bun.plugin({
      name: "metafora-self",
      setup(build) {
        build.module("metafora", () => ({ exports: { ...library }, loader: "object" }));
        build.module("metafora/statemachine", () => ({ exports: { ...statemachine }, loader: "object" }));
        build.module("metafora/etcd", async () => ({
          exports: { ...(await import("../../etcd.ts")) },
          loader: "object",
        }));
      },
    });
  }
  return "bun-plugin";
}
