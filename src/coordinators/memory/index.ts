/** The memory coordinator: several nodes in one process sharing one broker. */
export { MemoryBroker, type BrokerSnapshot, type MemoryBrokerOptions } from "./broker.ts";
export { MemoryCoordinator } from "./coordinator.ts";
export { MemoryClient } from "./client.ts";
export { MemoryStateStore, type MemoryStateStoreOptions, type StateSnapshotData } from "./state-store.ts";
export { MemoryTaskCommands } from "./commander.ts";
