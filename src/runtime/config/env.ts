/**
 * The environment source: METAFORA_* variables (table in schema.ts). An empty variable counts
 * as unset. A METAFORA_* variable the runtime does not know is an error, because a typo such
 * as METAFORA_ETCD_ENDPOINT would otherwise silently leave the node on the embedded coordinator.
 */
import type { Layer } from "./layer.ts";
import { suggest } from "./layer.ts";
import { CONFIG_ENV, KEYS } from "./schema.ts";

export type Env = Readonly<Record<string, string | undefined>>;

export interface EnvLayerResult {
  layer: Layer;
  errors: string[];
}

export function envLayer(env: Env): EnvLayerResult {
  const layer: Layer = new Map();
  const errors: string[] = [];
  const names = [CONFIG_ENV, ...KEYS.flatMap((k) => (k.env ? [k.env] : []))];
  for (const spec of KEYS) {
    if (!spec.env) continue;
    const value = env[spec.env];
    if (value !== undefined && value !== "") layer.set(spec.key, { value, source: { kind: "env", name: spec.env } });
  }
  for (const name of Object.keys(env)) {
    if (!name.startsWith("METAFORA_") || names.includes(name)) continue;
    const guess = suggest(name, names);
    errors.push(
      `unknown environment variable ${name}${guess ? ` (did you mean ${guess}?)` : ""}; known: ${names.join(", ")}`,
    );
  }
  return { layer, errors };
}
