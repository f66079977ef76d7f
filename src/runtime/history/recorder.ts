/**
 * Feeds the task history (task-history.ts) from what the node sees: the consumer's events
 * (claimed with node and token, released and why, done, handler errors, lost) and every state
 * the state machine stores. Submits and deletes are recorded by the backend that performs
 * them (embedded: its persisted client), since only it sees handlers' and the API's alike.
 */
import type { Consumer } from "../../consumer/consumer.ts";
import type { StateStore } from "../../statemachine/types.ts";
import { clipMessage, type TaskHistory } from "./task-history.ts";

export function recordConsumerHistory(consumer: Consumer, history: TaskHistory, node: string): () => void {
  const now = (): string => new Date().toISOString();
  const off = [
    consumer.on("claimed", ({ task, token }) => history.record(task.id, { at: now(), kind: "claimed", node, token })),
    consumer.on("released", ({ taskId, reason, error }) =>
      history.record(taskId, {
        at: now(),
        kind: "released",
        node,
        reason: error !== undefined ? "handler error" : (reason ?? "handler returned release"),
      }),
    ),
    consumer.on("done", ({ taskId }) => history.record(taskId, { at: now(), kind: "done", node })),
    consumer.on("handlerError", ({ taskId, error }) =>
      history.record(taskId, { at: now(), kind: "error", node, message: clipMessage(errorText(error)) }),
    ),
    consumer.on("lost", ({ taskId, reason }) => history.record(taskId, { at: now(), kind: "lost", node, reason })),
  ];
  return () => {
    for (const f of off) f();
  };
}

/** The same store, recording each state written as a "state" event (reason = the state code). */
export function recordingStateStore(inner: StateStore, history: TaskHistory, node: string): StateStore {
  const store: StateStore = {
    load: (taskId) => inner.load(taskId),
    async store(taskId, state) {
      await inner.store(taskId, state);
      history.record(taskId, { at: new Date().toISOString(), kind: "state", node, reason: state.code });
    },
  };
  if (inner.get) store.get = (taskId) => inner.get!(taskId);
  return store;
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  try {
    return typeof error === "string" ? error : (JSON.stringify(error) ?? String(error));
  } catch {
    return String(error);
  }
}
