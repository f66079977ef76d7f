/** The coordinator contract on the etcd coordinator, against a real etcd (a fresh namespace per test). */
import { EtcdClient } from "../../src/coordinators/etcd/client.ts";
import { EtcdCoordinator } from "../../src/coordinators/etcd/coordinator.ts";
import { uniqueNamespace } from "../etcd/helpers.ts";
import { CapturingLogger } from "../support/logger.ts";
import { useEtcd } from "../support/use-etcd.ts";
import { coordinatorContract } from "./contract.ts";

const etcd = useEtcd();

coordinatorContract(
  async () => {
    const namespace = uniqueNamespace("contract");
    const client = EtcdClient.connect({ endpoints: [etcd.endpoint], namespace }, { log: new CapturingLogger() });
    const coordinators: EtcdCoordinator[] = [];
    return {
      client,
      coordinator: (node) => {
        const c = new EtcdCoordinator(
          { endpoints: [etcd.endpoint], namespace, node, leaseTtl: 3 },
          { log: new CapturingLogger() },
        );
        coordinators.push(c);
        return c;
      },
      close: async () => {
        client.close();
      },
    };
  },
  { multiNode: true, timeout: 20_000 },
);
