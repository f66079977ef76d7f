/**
 * Makes `import ... from "metafora"` in handler files resolve to this very runtime, from any
 * folder and with no node_modules, both from source and inside the compiled binary. Handlers
 * then share the runtime's module instances (so `instanceof StopError` holds).
 *
 * Bun: a runtime plugin registers a virtual module named "metafora" whose exports are the
 * library's public API (src/index.ts). It must be registered before any handler is imported.
 * Deno: the import map in deno.json maps "metafora" to ./src/index.ts; nothing to do here.
 */
import * as library from "../index.ts";

/** The part of Bun's plugin API used here (declared locally so Deno type-checks this file). */
interface BunPluginHost {
  plugin(plugin: {
    name: string;
    setup(build: { module(specifier: string, load: () => { exports: Record<string, unknown>; loader: "object" }): unknown }): void;
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
      },
    });
  }
  return "bun-plugin";
}
