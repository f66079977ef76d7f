/**
 * The embedded coordinator: the memory broker (one node, no etcd) with its tasks, the state
 * machine's states, task commands no handler has taken yet, checkpoints and task history kept
 * in one SQLite database under data_dir (sqlite-store.ts), durable across restarts and
 * kill -9: an acknowledged submit or `metafora pause` is committed before it is answered.
 *
 * A data dir still in the journal format of earlier versions is imported on first start and
 * its files are kept aside as a backup (journal-import.ts).
 */
import { mkdirSync } from "node:fs";
import { MemoryBroker } from "../../coordinators/memory/broker.ts";
import { MemoryTaskCommands } from "../../coordinators/memory/commander.ts";
import { MemoryStateStore, type StateSnapshotData } from "../../coordinators/memory/state-store.ts";
import { decodeMessage, encodeMessage, encodeState } from "../../statemachine/codec.ts";
import type { Message } from "../../statemachine/types.ts";
import type { ClaimRef, Logger } from "../../types.ts";
import type { Backend } from "../backends/backend.ts";
import type { RuntimeConfig } from "../config/schema.ts";
import { lockDataDir } from "./data-dir-lock.ts";
import { journalFiles, moveJournalAside, readJournalDataDir, type JournalData } from "./journal-import.ts";
import { persistedClient, persistedCoordinator, TokenReservation } from "./persisted.ts";
import { SqliteTaskHistory } from "./sqlite-history.ts";
import { EmbeddedStore } from "./sqlite-store.ts";

export async function openEmbeddedBackend(config: RuntimeConfig, log: Logger): Promise<Backend> {
  mkdirSync(config.dataDir, { recursive: true });
  const lock = lockDataDir(config.dataDir);
  let store: EmbeddedStore | undefined;
  try {
    store = openStore(config.dataDir, log);
    const db = store;
    const waiting = restoreCommands(db, log);
    // Writes for a claimed task are fenced by the broker's claims (see broker.holds); the broker
    // is made below, before any claim can exist.
    let broker: MemoryBroker | undefined;
    const fence = (taskId: string, claim: ClaimRef): boolean => broker?.holds(taskId, claim.node, claim.token) ?? false;
    const taskCommands = new MemoryTaskCommands({
      fence,
      waiting,
      // send() awaits this: the command is committed before send() resolves.
      onChange: (taskId, message) => {
        const write = db.putCommand(taskId, message ? encodeMessage(message) : undefined);
        if (message) return write;
        // A command taken or dropped: if that write is lost in a crash the command is simply
        // delivered again after the restart.
        write.catch((err: unknown) =>
          log.warn(`could not record that task ${taskId}'s command was taken: ${(err as Error).message}`),
        );
      },
    });
    const tokens = await TokenReservation.open(db);
    const history = new SqliteTaskHistory(db, log);
    // History of tasks long gone is bounded (the most recent 1000 gone tasks keep theirs).
    db.pruneGoneHistory().catch((err: unknown) =>
      log.warn(`pruning old task history failed: ${(err as Error).message}`),
    );
    const stored = db.tasks();
    const known = new Set(stored.map((t) => t.id));
    broker = new MemoryBroker({
      snapshot: { version: 1, lastToken: tokens.floor, tasks: stored },
      // Checkpoints: committed (after the broker's fence check) before ctx.checkpoint resolves.
      checkpoints: db.checkpoints(),
      onCheckpoint: (taskId, json, token) => {
        if (json !== undefined)
          return db.putCheckpoint(taskId, { value: json, token: token ?? 0, at: new Date().toISOString() });
        // Removed with its task: removeTask deletes the row in the same write.
      },
    });
    const hooks = {
      onSubmitted: (id: string) => history.record(id, { at: new Date().toISOString(), kind: "submitted" }),
      onGone: (id: string, why: "deleted" | "done") => {
        taskCommands.forget(id);
        // "done" is recorded from the consumer's event (with the node); a delete is recorded here.
        if (why === "deleted") history.record(id, { at: new Date().toISOString(), kind: "deleted" });
      },
    };
    const client = persistedClient(broker.client(), db, known, hooks);
    const coordinator = persistedCoordinator(broker.coordinator(config.node), db, known, client, tokens, hooks);
    const states = db.states();
    const stateStore = new MemoryStateStore({
      fence,
      snapshot: Object.fromEntries(
        states.map(([id, text]) => [id, JSON.parse(text) as Record<string, unknown>]),
      ) as StateSnapshotData,
      // store() awaits this: the state is committed before store() resolves.
      onChange: (taskId, state) => db.putState(taskId, encodeState(state)),
    });
    log.info(
      `embedded coordinator: ${stored.length} task(s), ${states.length} state(s) and ${waiting.length} waiting command(s) restored from ${db.file}`,
    );

    return {
      kind: "embedded",
      description: `embedded (data in ${config.dataDir})`,
      coordinator,
      client,
      stateStore,
      taskCommands,
      claimConcurrency: 1,
      history,
      checkpoints: db,
      readState: async (taskId) => stateStore.get(taskId),
      deleteState: async (taskId) => {
        const existed = stateStore.delete(taskId);
        await db.deleteState(taskId);
        return existed;
      },
      classifyJoinError: () => "other",
      classifyError: () => "other",
      attachMetrics() {
        // No lease, no keepalives: nothing coordinator-specific to measure.
      },
      async close() {
        db.close();
        lock.release();
      },
    };
  } catch (err) {
    store?.close();
    lock.release();
    throw err;
  }
}

/** Open (or create) the database; a journal-format data dir is imported into a new one. */
function openStore(dataDir: string, log: Logger): EmbeddedStore {
  const oldFiles = journalFiles(dataDir);
  let imported: JournalData | undefined;
  const store = EmbeddedStore.open(dataDir, log, {
    seed(s) {
      if (oldFiles.length === 0) return;
      imported = readJournalDataDir(dataDir, log);
      importJournal(s, imported, log);
      s.setMeta("imported_from_journal", new Date().toISOString());
    },
  });
  if (oldFiles.length > 0) {
    if (imported) {
      const backup = moveJournalAside(dataDir, oldFiles);
      log.warn(
        `imported the journal-format data in ${dataDir} into ${store.file}: ${imported.tasks.size} task(s), ${imported.states.size} state(s), ${imported.commands.size} waiting command(s); the old files are kept in ${backup} (remove them once satisfied)`,
      );
    } else if (store.meta("imported_from_journal")) {
      // Imported before, but the start stopped before the old files were moved.
      const backup = moveJournalAside(dataDir, oldFiles);
      log.warn(`moved the already-imported journal-format files of ${dataDir} to ${backup}`);
    } else {
      log.warn(
        `${dataDir} holds journal-format files (${oldFiles.join(", ")}) next to ${store.file}; they are ignored (the database is what counts)`,
      );
    }
  }
  return store;
}

function importJournal(store: EmbeddedStore, data: JournalData, log: Logger): void {
  for (const [id, props] of data.tasks) store.putTaskNow(id, JSON.stringify(props ?? {}));
  for (const [id, state] of data.states) store.putStateNow(id, JSON.stringify(state));
  for (const [id, message] of data.commands) {
    if (typeof message === "string") store.putCommandNow(id, message);
    else log.warn(`importing: the waiting command of task ${id} is not text; dropped`);
  }
  const ceiling = data.meta.get("tokenCeiling");
  if (typeof ceiling === "number" && Number.isSafeInteger(ceiling) && ceiling > 0)
    store.setMeta("token_ceiling", String(ceiling));
}

/** Waiting commands from disk; one that no longer decodes is logged and dropped, never fatal. */
function restoreCommands(store: EmbeddedStore, log: Logger): Array<[string, Message]> {
  const waiting: Array<[string, Message]> = [];
  for (const [taskId, text] of store.commands()) {
    try {
      waiting.push([taskId, decodeMessage(text)]);
    } catch (err) {
      log.warn(`dropping the unreadable waiting command of task ${taskId}: ${(err as Error).message}`);
      void store.putCommand(taskId, undefined);
    }
  }
  return waiting;
}
