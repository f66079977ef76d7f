/** The coordinator contract on the memory coordinator (one MemoryBroker per test). */
import { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import { coordinatorContract } from "./contract.ts";

coordinatorContract(
  async () => {
    const broker = new MemoryBroker();
    return { client: broker.client(), coordinator: (node) => broker.coordinator(node), close: async () => {} };
  },
  { multiNode: true },
);
