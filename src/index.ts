/**
 * metafora: run long-lived tasks across a cluster. The library's root entry: what an
 * application needs to run nodes and write handlers. Coordinator-specific parts live in
 * subpaths, loaded only by those who use them:
 *
 *   metafora/etcd          the etcd coordinator, client, state store and task commands
 *   metafora/statemachine  the state machine's messages, codes, codec and policies
 *
 * docs/architecture.md shows how the parts fit together.
 */

// Types and errors
export type * from "./types.ts";
export {
  MetaforaError,
  TaskExistsError,
  NodeNameTakenError,
  ConfigError,
  StopError,
  ClaimLostError,
  CheckpointTooLargeError,
} from "./errors.ts";
export { setLogger, getLogger, scopedLogger, silentLogger } from "./log.ts";
export { MAX_CHECKPOINT_BYTES } from "./checkpoint.ts";

// Node commands (for Client.submitCommand)
export { freeze, unfreeze, balance, stopTask } from "./command.ts";

// Core: consumer, handlers, balancers
export { Consumer, type ConsumerOptions, type ConsumerEvents, type ConsumerState } from "./consumer/consumer.ts";
export { defineHandler, routeTask } from "./handler.ts";
export { defineStatefulHandler, type StatefulHandlerModule } from "./runtime/handlers/define.ts";
export { DumbBalancer } from "./balancers/dumb.ts";
export { FairBalancer, type FairBalancerOptions } from "./balancers/fair.ts";
export { ResourceBalancer, type ResourceBalancerOptions } from "./balancers/resource.ts";
export { memoryReporter, cpuReporter, type ResourceReporter, type ResourceUsage } from "./balancers/reporters.ts";
export { SleepBalancer, type SleepBalancerOptions } from "./balancers/sleep.ts";

// Memory coordinator: nodes in one process (tests, single-process apps)
export {
  MemoryBroker,
  MemoryCoordinator,
  MemoryClient,
  MemoryStateStore,
  MemoryTaskCommands,
  type BrokerSnapshot,
  type MemoryBrokerOptions,
  type MemoryStateStoreOptions,
  type StateSnapshotData,
} from "./coordinators/memory/index.ts";

// State machine: what a stateful handler needs (the rest is in metafora/statemachine)
export {
  statefulHandler,
  runStateMachine,
  defaultErrorPolicy,
  isTerminal,
  StateStoreError,
} from "./statemachine/index.ts";
export type {
  BackoffOptions,
  DefaultErrorPolicyOptions,
  ErrorPolicy,
  Message,
  MessageCode,
  RunnerOptions,
  State,
  StateCode,
  StateError,
  StatefulContext,
  StatefulHandler,
  StatefulHandlerOptions,
  StatefulRun,
  StateSnapshot,
  StateStore,
  TaskCommander,
  TaskCommandSource,
} from "./statemachine/index.ts";
