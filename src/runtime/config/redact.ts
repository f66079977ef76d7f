/** Secrets (etcd password, HTTP token) never leave the process in logs or `metafora config`. */
import type { RuntimeConfig } from "./schema.ts";

export const REDACTED = "[redacted]";

/** A copy of `config` with every secret that is set replaced by "[redacted]". */
export function redactConfig(config: RuntimeConfig): RuntimeConfig {
  const http = { ...config.http };
  if (http.token !== undefined) http.token = REDACTED;
  const etcd = { ...config.etcd };
  if (etcd.password !== undefined) etcd.password = REDACTED;
  return { ...config, http, etcd };
}
