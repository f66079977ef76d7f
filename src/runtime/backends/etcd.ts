/**
 * The etcd coordinator as a runtime backend: one etcd3 connection (endpoints, TLS files,
 * username/password from the config) shared by the coordinator, the state store and the task
 * commands, closed last, after the consumer has released its tasks and revoked its lease.
 */
import { connectEtcd } from "../../coordinators/etcd/connect.ts";
import { EtcdCoordinator } from "../../coordinators/etcd/coordinator.ts";
import { classifyEtcdError } from "../../coordinators/etcd/errors.ts";
import { EtcdStateStore } from "../../coordinators/etcd/state-store.ts";
import { EtcdTaskCommands } from "../../coordinators/etcd/task-commands.ts";
import { scopedLogger } from "../../log.ts";
import type { Logger } from "../../types.ts";
import type { Backend } from "./backend.ts";
import { etcdConfigOf } from "../config/etcd.ts";
import type { RuntimeConfig } from "../config/schema.ts";
import { readAllEtcdStates } from "../operator/etcd-states.ts";
import { MemoryTaskHistory } from "../history/task-history.ts";

/** Enough claims in flight to fill the coordinator's pipelined batch transactions (4 × 64). */
const ETCD_CLAIM_CONCURRENCY = 256;

export async function openEtcdBackend(config: RuntimeConfig, log: Logger): Promise<Backend> {
  const etcdConfig = etcdConfigOf(config, { asNode: true });
  const connection = connectEtcd(etcdConfig);
  const coordinator = new EtcdCoordinator(etcdConfig, {
    etcd: connection,
    log: scopedLogger(`etcd ${etcdConfig.namespace}`, log),
  });
  const stateStore = new EtcdStateStore(connection, etcdConfig.namespace);
  const taskCommands = new EtcdTaskCommands(connection, etcdConfig.namespace, config.node, log);
  const detach: Array<() => void> = [];
  return {
    kind: "etcd",
    description: `etcd ${etcdConfig.endpoints.join(",")} namespace ${etcdConfig.namespace}`,
    coordinator,
    client: coordinator.client,
    stateStore,
    taskCommands,
    // Claims in flight share batched, pipelined transactions; many in flight keep a node that
    // starts with thousands of unclaimed tasks from ramping up one round trip at a time.
    claimConcurrency: ETCD_CLAIM_CONCURRENCY,
    // etcd stores no history: this node remembers what it saw of the tasks it ran.
    history: new MemoryTaskHistory(),
    readState: (taskId) => stateStore.get(taskId),
    readStates: () => readAllEtcdStates(connection, etcdConfig.namespace),
    deleteState: (taskId) => stateStore.delete(taskId),
    // A join that failed for any reason but credentials failed to reach the cluster.
    classifyJoinError: (err) => (classifyEtcdError(err) === "credentials" ? "credentials" : "unavailable"),
    classifyError: classifyEtcdError,
    attachMetrics(metrics) {
      detach.push(coordinator.on("keepalive", ({ latencyMs }) => metrics.observeKeepalive(latencyMs)));
      detach.push(coordinator.on("loopLag", ({ maxMs }) => metrics.observeLoopLag(maxMs)));
    },
    async close() {
      for (const d of detach.splice(0)) d();
      // The consumer closed the coordinator (watches stopped, lease revoked); the shared
      // connection is ours to close.
      connection.close();
    },
  };
}
