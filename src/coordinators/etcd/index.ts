/** The etcd coordinator and client: Go Metafora's wire format, fenced claims, no crash paths. */
export { EtcdCoordinator } from "./coordinator.ts";
export type {
  EtcdCoordinatorEvents,
  EtcdCoordinatorOptions,
  EtcdCoordinatorState,
  EtcdCoordinatorStats,
} from "./coordinator.ts";
export { EtcdClient } from "./client.ts";
export type { EtcdClientOptions } from "./client.ts";
export { DEFAULT_LEASE_TTL, parseEtcdConfig, redactEtcdConfig } from "./config.ts";
export type { EtcdConfig, EtcdConfigInput, EtcdTlsConfig } from "./config.ts";
export { connectEtcd } from "./connect.ts";
export {
  Keys,
  normalizeNamespace,
  encodeOwner,
  decodeOwner,
  encodeMetadata,
  invalidTaskIdReason,
  invalidNodeNameReason,
} from "./keys.ts";
export { leaseTiming } from "./lease.ts";
export type { LeaseTiming } from "./lease.ts";
export { EtcdStateStore } from "./state-store.ts";
export { EtcdTaskCommands } from "./task-commands.ts";
export { classifyEtcdError } from "./errors.ts";
