/**
 * Task states in etcd (docs/wire-format.md): `N/state/T`, permanent (no lease), holding the State JSON
 * Go writes, so Go Metafora and we read each other's states. Terminal states stay after the
 * task is deleted, which is what makes a resubmitted finished task a no-op.
 *
 * A write for a running task is fenced: one transaction that puts the state only if the
 * task's owner key still holds this node's value AND was created at the claim's token, so a
 * node that was paused past its lease cannot overwrite what the new owner (or an operator
 * through it) stored. Values stay Go's; states written by Go nodes (unfenced) read the same.
 */
import { Buffer } from "node:buffer";
import type { Etcd3 } from "etcd3";
import { ClaimLostError } from "../../errors.ts";
import { decodeState, encodeState } from "../../statemachine/codec.ts";
import type { State, StateStore } from "../../statemachine/types.ts";
import type { ClaimRef } from "../../types.ts";
import { encodeOwner, Keys } from "./keys.ts";

const RUNNABLE: State = { code: "runnable" };

export class EtcdStateStore implements StateStore {
  private readonly keys: Keys;

  constructor(
    private readonly client: Etcd3,
    namespace: string | Keys,
  ) {
    this.keys = typeof namespace === "string" ? new Keys(namespace) : namespace;
  }

  /**
   * The stored state; if there is none, `runnable` is written and returned (as Go does), in
   * one transaction so a state written meanwhile is never overwritten.
   */
  async load(taskId: string): Promise<State> {
    const key = this.keys.state(taskId);
    const res = await this.client
      .if(key, "Version", "==", 0)
      .then(this.client.put(key).value(encodeState(RUNNABLE)))
      .else(this.client.get(key))
      .commit();
    if (res.succeeded) return RUNNABLE;
    const kv = res.responses[0]?.response_range?.kvs?.[0];
    if (!kv) throw new Error(`state key ${key} vanished while being read`);
    return this.decode(key, kv.value.toString());
  }

  async store(taskId: string, state: State, claim?: ClaimRef): Promise<void> {
    const key = this.keys.state(taskId);
    const value = encodeState(state);
    if (!claim) {
      await this.client.put(key).value(value).exec();
      return;
    }
    const owner = Buffer.from(this.keys.owner(taskId));
    const res = await this.client.kv.txn({
      compare: [
        { key: owner, target: "Value", result: "Equal", value: Buffer.from(encodeOwner(claim.node)) },
        { key: owner, target: "Create", result: "Equal", create_revision: claim.token },
      ],
      success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value) } }],
    });
    if (!res.succeeded) throw new ClaimLostError(taskId, claim.token, `state write (${state.code})`);
  }

  /** The stored state without creating one (for operators). */
  async get(taskId: string): Promise<State | undefined> {
    const key = this.keys.state(taskId);
    const value = await this.client.get(key).string();
    return value === null ? undefined : this.decode(key, value);
  }

  /** Delete the stored state (operators' `state reset`); false when there was none. */
  async delete(taskId: string): Promise<boolean> {
    const res = await this.client.delete().key(this.keys.state(taskId)).exec();
    return Number(res.deleted) > 0;
  }

  private decode(key: string, value: string): State {
    try {
      return decodeState(value);
    } catch (err) {
      throw new Error(`state key ${key} holds an unreadable state: ${(err as Error).message}`);
    }
  }
}
