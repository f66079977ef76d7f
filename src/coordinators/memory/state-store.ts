/**
 * In-memory state store for the embedded coordinator. States are kept in the same JSON as
 * etcd's `state/T` values (docs/wire-format.md), so a snapshot can be persisted with the coordinator's
 * data and restored exactly, and both stores behave identically.
 */
import { decodeState, encodeState } from "../../statemachine/codec.ts";
import { ClaimLostError } from "../../errors.ts";
import type { State, StateStore } from "../../statemachine/types.ts";
import type { ClaimRef } from "../../types.ts";

/** A persisted snapshot: task id → the state's JSON object ({"state": "...", ...}). */
export type StateSnapshotData = Record<string, Record<string, unknown>>;

export interface MemoryStateStoreOptions {
  /** Restore from a snapshot() taken earlier. Entries that do not decode are rejected. */
  snapshot?: StateSnapshotData;
  /**
   * Called after every write (including the first-load write), e.g. to persist the store;
   * store() resolves only once a returned promise has (the write is then durable).
   */
  onChange?: (taskId: string, state: State) => unknown;
  /**
   * The fence for writes made for a claimed task: does `claim` still hold `taskId`? With a
   * MemoryBroker: `(id, c) => broker.holds(id, c.node, c.token)`. Without it, fenced writes
   * are plain writes.
   */
  fence?: (taskId: string, claim: ClaimRef) => boolean;
}

export class MemoryStateStore implements StateStore {
  private readonly states = new Map<string, string>();
  private readonly onChange: ((taskId: string, state: State) => unknown) | undefined;
  private readonly fence: ((taskId: string, claim: ClaimRef) => boolean) | undefined;

  constructor(opts: MemoryStateStoreOptions = {}) {
    this.onChange = opts.onChange;
    this.fence = opts.fence;
    for (const [taskId, value] of Object.entries(opts.snapshot ?? {})) {
      const json = JSON.stringify(value);
      try {
        decodeState(json);
      } catch (err) {
        throw new TypeError(`state snapshot entry for task "${taskId}" is invalid: ${(err as Error).message}`);
      }
      this.states.set(taskId, json);
    }
  }

  /** A task never seen before is runnable, and that is recorded (like Go's etcd store). */
  async load(taskId: string): Promise<State> {
    const existing = this.get(taskId);
    if (existing) return existing;
    const initial: State = { code: "runnable" };
    await this.store(taskId, initial);
    return initial;
  }

  async store(taskId: string, state: State, claim?: ClaimRef): Promise<void> {
    if (claim && this.fence && !this.fence(taskId, claim))
      throw new ClaimLostError(taskId, claim.token, `state write (${state.code})`);
    const json = encodeState(state);
    this.states.set(taskId, json);
    await this.onChange?.(taskId, decodeState(json));
  }

  /** The stored state without creating one (for operators and tests). */
  get(taskId: string): State | undefined {
    const json = this.states.get(taskId);
    return json === undefined ? undefined : decodeState(json);
  }

  /** Forget a task's state (operators prune terminal states). Returns whether it existed. */
  delete(taskId: string): boolean {
    return this.states.delete(taskId);
  }

  /** Every stored state as JSON-ready objects, for persistence. */
  snapshot(): StateSnapshotData {
    const out: StateSnapshotData = {};
    for (const [taskId, json] of this.states) out[taskId] = JSON.parse(json) as Record<string, unknown>;
    return out;
  }
}
