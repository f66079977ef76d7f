/**
 * metafora/etcd: the etcd coordinator for clusters (Go Metafora's etcd layout, see
 * docs/wire-format.md). A subpath of its own so that programs on the memory or embedded
 * coordinator never load the etcd client (etcd3, gRPC, protobuf).
 */
export {
  EtcdCoordinator,
  EtcdClient,
  EtcdStateStore,
  EtcdTaskCommands,
  connectEtcd,
  parseEtcdConfig,
  redactEtcdConfig,
  classifyEtcdError,
  DEFAULT_LEASE_TTL,
} from "./coordinators/etcd/index.ts";
export type {
  EtcdConfig,
  EtcdConfigInput,
  EtcdTlsConfig,
  EtcdClientOptions,
  EtcdCoordinatorEvents,
  EtcdCoordinatorOptions,
  EtcdCoordinatorState,
  EtcdCoordinatorStats,
} from "./coordinators/etcd/index.ts";
export type { CoordinatorErrorKind } from "./coordinators/error-kind.ts";
