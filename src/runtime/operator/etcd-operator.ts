/**
 * The Operator in etcd mode: the CLI talks to etcd directly with the library's own client,
 * task commander and state store, so no node needs to be running (and any node, Go or ours,
 * acts on what it writes).
 */
import { EtcdClient } from "../../coordinators/etcd/client.ts";
import { connectEtcd } from "../../coordinators/etcd/connect.ts";
import { classifyEtcdError } from "../../coordinators/etcd/errors.ts";
import { EtcdStateStore } from "../../coordinators/etcd/state-store.ts";
import { EtcdTaskCommands } from "../../coordinators/etcd/task-commands.ts";
import { withTimeout } from "../../internal/timers.ts";
import { silentLogger } from "../../log.ts";
import { etcdConfigOf } from "../config/etcd.ts";
import type { RuntimeConfig } from "../config/schema.ts";
import { ClusterOperator } from "./cluster-operator.ts";
import { readAllEtcdStates } from "./etcd-states.ts";
import { OperatorError, type Operator } from "./types.ts";

export async function createEtcdOperator(config: RuntimeConfig): Promise<Operator> {
  const etcdConfig = etcdConfigOf(config);
  const etcd = connectEtcd(etcdConfig);
  const ns = etcdConfig.namespace;
  const target = `etcd at ${etcdConfig.endpoints.join(",")} (namespace ${ns})`;
  const client = new EtcdClient(etcd, ns, { requestTimeout: etcdConfig.requestTimeout, log: silentLogger });
  // The commander's node name only matters for consuming commands, which an operator never does.
  const commands = new EtcdTaskCommands(etcd, ns, config.node, silentLogger);
  const store = new EtcdStateStore(etcd, ns);
  const operator = new ClusterOperator({
    target,
    client,
    taskCommands: commands,
    readState: (id) => store.get(id),
    readStates: () => readAllEtcdStates(etcd, ns),
    historyNote:
      "etcd keeps no task history: it is held in memory by the node that ran the task (ask that node: GET /api/tasks/<id>)",
    deleteState: (id) => store.delete(id),
    waiting: { liveNodes: () => client.nodes() },
    classifyError: classifyEtcdError,
    close: async () => etcd.close(),
  });
  // Fail fast and clearly (exit 69) when etcd cannot be reached, before any real work.
  try {
    await withTimeout(
      etcd.get(`${ns}/_metafora`).exec(),
      etcdConfig.dialTimeout,
      () => new Error(`no answer within ${etcdConfig.dialTimeout}ms`),
    );
  } catch (err) {
    etcd.close();
    const message = err instanceof Error ? err.message : String(err);
    // Authentication and permission failures are not "unreachable": report them as they are.
    if (classifyEtcdError(err) === "credentials")
      throw new OperatorError("failed", `${target} refused the credentials: ${message}`);
    throw new OperatorError(
      "unavailable",
      `${target} is unreachable (${message}); check etcd.endpoints / METAFORA_ETCD_ENDPOINTS`,
    );
  }
  return operator;
}
