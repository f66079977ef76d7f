/**
 * The embedded coordinator: the memory broker (one node, no etcd) with its tasks and the state
 * machine's states kept under data_dir, durable across restarts and kill -9 (see
 * durable-map.ts). Pending task commands (pause/resume/...) are not persisted: like a claim,
 * an undelivered command dies with the process; the state it would have produced is what
 * counts, and states are persisted.
 */
import { MemoryBroker } from "../../coordinators/memory/broker.ts";
import { MemoryTaskCommands } from "../../coordinators/memory/commander.ts";
import { MemoryStateStore, type StateSnapshotData } from "../../coordinators/memory/state-store.ts";
import { encodeState } from "../../statemachine/codec.ts";
import type { Logger, TaskProps } from "../../types.ts";
import type { Backend } from "../backend.ts";
import type { RuntimeConfig } from "../config/schema.ts";
import { lockDataDir } from "./data-dir-lock.ts";
import { DurableMap } from "./durable-map.ts";
import { persistedClient, persistedCoordinator, TokenReservation } from "./persisted.ts";

export async function openEmbeddedBackend(config: RuntimeConfig, log: Logger): Promise<Backend> {
  const { mkdirSync } = await import("node:fs");
  mkdirSync(config.dataDir, { recursive: true });
  const lock = lockDataDir(config.dataDir);
  let tasks: DurableMap<TaskProps> | undefined;
  let states: DurableMap<Record<string, unknown>> | undefined;
  let meta: DurableMap<number> | undefined;
  try {
    tasks = DurableMap.open<TaskProps>(config.dataDir, "tasks", log);
    states = DurableMap.open<Record<string, unknown>>(config.dataDir, "states", log);
    meta = DurableMap.open<number>(config.dataDir, "meta", log);
    const stateMap = states;
    const metaMap = meta;
    const tokens = new TokenReservation(meta);

    const broker = new MemoryBroker({
      snapshot: { version: 1, lastToken: tokens.floor, tasks: [...tasks.entries()].map(([id, props]) => ({ id, props })) },
    });
    const client = persistedClient(broker.client(), tasks);
    const coordinator = persistedCoordinator(broker.coordinator(config.node), tasks, client, tokens);
    const stateStore = new MemoryStateStore({
      snapshot: Object.fromEntries(stateMap.entries()) as StateSnapshotData,
      // Called synchronously inside store(): the state is on disk before store() resolves.
      onChange: (taskId, state) => stateMap.set(taskId, JSON.parse(encodeState(state)) as Record<string, unknown>),
    });
    const taskCommands = new MemoryTaskCommands();
    log.info(`embedded coordinator: ${tasks.size} task(s) and ${stateMap.size} state(s) restored from ${config.dataDir}`);

    const openTasks = tasks;
    return {
      kind: "embedded",
      description: `embedded (data in ${config.dataDir})`,
      coordinator,
      client,
      stateStore,
      taskCommands,
      claimConcurrency: 1,
      readState: async (taskId) => stateStore.get(taskId),
      classifyJoinError: () => "other",
      attachMetrics() {
        // No lease, no keepalives: nothing coordinator-specific to measure.
      },
      async close() {
        openTasks.close();
        stateMap.close();
        metaMap.close();
        lock.release();
      },
    };
  } catch (err) {
    tasks?.close();
    states?.close();
    meta?.close();
    lock.release();
    throw err;
  }
}
