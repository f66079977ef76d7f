/**
 * The coordinator contract on the runtime's embedded backend (the memory broker persisted in a
 * temporary data dir): one node per data dir, so the two-node cases are skipped.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/runtime/config/load.ts";
import { openEmbeddedBackend } from "../../src/runtime/embedded/backend.ts";
import { CapturingLogger } from "../support/logger.ts";
import { coordinatorContract } from "./contract.ts";

coordinatorContract(
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "metafora-contract-"));
    const config = await loadConfig({
      env: { METAFORA_DATA_DIR: join(dir, "data"), METAFORA_NODE: "n1" },
      cwd: dir,
      isTTY: false,
    });
    const backend = await openEmbeddedBackend(config, new CapturingLogger());
    return {
      client: backend.client,
      coordinator: (node) => {
        if (node !== "n1") throw new Error(`the embedded backend serves node "n1" only, not "${node}"`);
        return backend.coordinator;
      },
      close: async () => {
        await backend.coordinator.close();
        await backend.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  { multiNode: false },
);
