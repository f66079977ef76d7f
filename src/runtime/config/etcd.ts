/**
 * The etcd settings of a runtime config, in the etcd coordinator's own validated shape. One
 * conversion for the node (which also names itself and its lease) and for the operator CLI.
 */
import { parseEtcdConfig, type EtcdConfig } from "../../coordinators/etcd/config.ts";
import type { RuntimeConfig } from "./schema.ts";

export function etcdConfigOf(config: RuntimeConfig, opts: { asNode?: boolean } = {}): EtcdConfig {
  const e = config.etcd;
  const tls =
    e.ca || e.cert || e.key
      ? { ...(e.ca ? { ca: e.ca } : {}), ...(e.cert ? { cert: e.cert } : {}), ...(e.key ? { key: e.key } : {}) }
      : undefined;
  return parseEtcdConfig(
    {
      endpoints: e.endpoints,
      namespace: config.namespace,
      ...(opts.asNode ? { node: config.node, leaseTtl: config.leaseTtl } : {}),
      dialTimeout: e.dialTimeout,
      requestTimeout: e.requestTimeout,
      ...(tls ? { tls } : {}),
      ...(e.username !== undefined ? { username: e.username, password: e.password ?? "" } : {}),
    },
    "etcd settings",
  );
}
