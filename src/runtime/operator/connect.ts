/**
 * Reach the cluster a config describes, the way the operator CLI does it:
 * - embedded: the tasks live inside the running node, so go through its HTTP JSON API at
 *   http.listen with http.token;
 * - etcd: talk to etcd directly (no node needs to be running).
 */
import { ConfigError } from "../../errors.ts";
import type { RuntimeConfig } from "../config/schema.ts";
import { HttpOperator, clientUrlForListen } from "./http-operator.ts";
import type { Operator } from "./types.ts";

export async function connectOperator(config: RuntimeConfig): Promise<Operator> {
  if (config.coordinator === "etcd") {
    // Loaded only in etcd mode, so the embedded path never pulls in the etcd client.
    const { createEtcdOperator } = await import("./etcd-operator.ts");
    return createEtcdOperator(config);
  }
  if (config.http.listen === "off") {
    throw new ConfigError(
      "the embedded coordinator is reached through the node's HTTP API, but http.listen is \"off\"; set http.listen (METAFORA_HTTP) to the node's address",
    );
  }
  return new HttpOperator({ baseUrl: clientUrlForListen(config.http.listen), token: config.http.token });
}
