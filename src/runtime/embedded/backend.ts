/**
 * The embedded coordinator: the memory broker (one node, no etcd) with its tasks and the state
 * machine's states kept under data_dir, durable across restarts and kill -9 (see
 * durable-map.ts), and so are task commands (pause/resume/...) that no handler has taken yet:
 * an acknowledged `metafora pause` survives kill -9 like an acknowledged submit.
 */
import { MemoryBroker } from "../../coordinators/memory/broker.ts";
import { MemoryTaskCommands } from "../../coordinators/memory/commander.ts";
import { MemoryStateStore, type StateSnapshotData } from "../../coordinators/memory/state-store.ts";
import { decodeMessage, encodeMessage, encodeState } from "../../statemachine/codec.ts";
import type { Message } from "../../statemachine/types.ts";
import type { ClaimRef, Logger, TaskProps } from "../../types.ts";
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
  let commands: DurableMap<string> | undefined;
  let checkpoints: DurableMap<string> | undefined;
  try {
    tasks = DurableMap.open<TaskProps>(config.dataDir, "tasks", log);
    states = DurableMap.open<Record<string, unknown>>(config.dataDir, "states", log);
    meta = DurableMap.open<number>(config.dataDir, "meta", log);
    commands = DurableMap.open<string>(config.dataDir, "commands", log);
    checkpoints = DurableMap.open<string>(config.dataDir, "checkpoints", log);
    const checkpointMap = checkpoints;
    const stateMap = states;
    const metaMap = meta;
    const commandMap = commands;
    // Writes for a claimed task are fenced by the broker's claims (see broker.holds).
    const fence = (taskId: string, claim: ClaimRef): boolean => broker.holds(taskId, claim.node, claim.token);
    const taskCommands = new MemoryTaskCommands({
      fence,
      waiting: restoreCommands(commandMap, log),
      // Synchronous, inside send(): the command is on disk before send() resolves.
      onChange: (taskId, message) => (message ? commandMap.set(taskId, encodeMessage(message)) : commandMap.delete(taskId)),
    });
    const forgetTask = (id: string): void => taskCommands.forget(id);
    const tokens = new TokenReservation(meta);

    const broker = new MemoryBroker({
      snapshot: { version: 1, lastToken: tokens.floor, tasks: [...tasks.entries()].map(([id, props]) => ({ id, props })) },
      // Checkpoints: on disk (synchronously, after the fence check) before ctx.checkpoint resolves.
      checkpoints: checkpointMap.entries(),
      onCheckpoint: (taskId, json) => (json === undefined ? checkpointMap.delete(taskId) : checkpointMap.set(taskId, json)),
    });
    const client = persistedClient(broker.client(), tasks, forgetTask);
    const coordinator = persistedCoordinator(broker.coordinator(config.node), tasks, client, tokens, forgetTask);
    const stateStore = new MemoryStateStore({
      fence,
      snapshot: Object.fromEntries(stateMap.entries()) as StateSnapshotData,
      // Called synchronously inside store(): the state is on disk before store() resolves.
      onChange: (taskId, state) => stateMap.set(taskId, JSON.parse(encodeState(state)) as Record<string, unknown>),
    });
    log.info(
      `embedded coordinator: ${tasks.size} task(s), ${stateMap.size} state(s) and ${commandMap.size} waiting command(s) restored from ${config.dataDir}`,
    );

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
        commandMap.close();
        checkpointMap.close();
        lock.release();
      },
    };
  } catch (err) {
    tasks?.close();
    states?.close();
    meta?.close();
    commands?.close();
    checkpoints?.close();
    lock.release();
    throw err;
  }
}

/** Waiting commands from disk; one that no longer decodes is logged and dropped, never fatal. */
function restoreCommands(map: DurableMap<string>, log: Logger): Array<[string, Message]> {
  const waiting: Array<[string, Message]> = [];
  for (const [taskId, text] of [...map.entries()]) {
    try {
      waiting.push([taskId, decodeMessage(text)]);
    } catch (err) {
      log.warn(`dropping the unreadable waiting command of task ${taskId}: ${(err as Error).message}`);
      map.delete(taskId);
    }
  }
  return waiting;
}
