/**
 * The backend registry: which module opens each coordinator kind. Each is imported only when
 * chosen, so a node on the embedded coordinator never loads the etcd client. A new coordinator
 * is one more line here (and its kind in the config schema).
 */
import type { Logger } from "../../types.ts";
import type { Backend } from "./backend.ts";
import type { RuntimeConfig } from "../config/schema.ts";

type OpenBackend = (config: RuntimeConfig, log: Logger) => Promise<Backend>;

const BACKENDS: Record<RuntimeConfig["coordinator"], () => Promise<OpenBackend>> = {
  embedded: async () => (await import("../embedded/backend.ts")).openEmbeddedBackend,
  etcd: async () => (await import("./etcd.ts")).openEtcdBackend,
};

export async function openBackend(config: RuntimeConfig, log: Logger): Promise<Backend> {
  const open = await BACKENDS[config.coordinator]();
  return open(config, log);
}
