/**
 * metafora: run long-lived tasks across a cluster. Public API of the library.
 * Sections are grouped by concept; each file holds one concept.
 */

// Types and errors
export type * from "./types.ts";
export * from "./errors.ts";
export { setLogger, getLogger, scopedLogger, silentLogger } from "./log.ts";
export { MAX_CHECKPOINT_BYTES } from "./checkpoint.ts";

// Node commands
export { freeze, unfreeze, balance, stopTask, encodeCommand, decodeCommand } from "./command.ts";

// Core: consumer, handlers, balancers (issue 2)
export { Consumer, type ConsumerOptions, type ConsumerEvents, type ConsumerState } from "./consumer.ts";
export { defineHandler, routeTask } from "./handler.ts";
export { DumbBalancer } from "./balancers/dumb.ts";
export { FairBalancer, type FairBalancerOptions } from "./balancers/fair.ts";
export { ResourceBalancer, type ResourceBalancerOptions } from "./balancers/resource.ts";
export { memoryReporter, cpuReporter, type ResourceReporter, type ResourceUsage } from "./balancers/reporters.ts";
export { SleepBalancer, type SleepBalancerOptions } from "./balancers/sleep.ts";

// Memory coordinator (issue 2)
export { MemoryBroker, MemoryCoordinator, MemoryClient, type BrokerSnapshot, type MemoryBrokerOptions } from "./coordinators/memory/index.ts";

// etcd coordinator (issue 3)
export { EtcdCoordinator, EtcdClient, connectEtcd, parseEtcdConfig, redactEtcdConfig, DEFAULT_LEASE_TTL, leaseTiming } from "./coordinators/etcd/index.ts";
export { Keys as EtcdKeys, normalizeNamespace, encodeOwner, decodeOwner } from "./coordinators/etcd/index.ts";
export type {
  EtcdConfig,
  EtcdConfigInput,
  EtcdTlsConfig,
  EtcdClientOptions,
  EtcdCoordinatorEvents,
  EtcdCoordinatorOptions,
  EtcdCoordinatorState,
  EtcdCoordinatorStats,
  LeaseTiming,
} from "./coordinators/etcd/index.ts";

// State machine (issue 4)
export * from "./statemachine/index.ts";
export { MemoryStateStore } from "./coordinators/memory/state-store.ts";
export type { MemoryStateStoreOptions, StateSnapshotData } from "./coordinators/memory/state-store.ts";
export { MemoryTaskCommands } from "./coordinators/memory/commander.ts";
export { EtcdStateStore } from "./coordinators/etcd/state-store.ts";
export { EtcdTaskCommands } from "./coordinators/etcd/task-commands.ts";

// Runtime handler modules (issue 5)
export { defineStatefulHandler, type StatefulHandlerModule } from "./runtime/define.ts";
