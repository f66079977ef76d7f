/** Every task state in an etcd namespace (`state/T`) in one range read, for listing many rows. */
import type { Etcd3 } from "etcd3";
import { Keys } from "../../coordinators/etcd/keys.ts";
import { decodeState } from "../../statemachine/codec.ts";
import type { State } from "../../statemachine/types.ts";

/** A value that does not decode is left out (`metafora state <id>` reports it by itself). */
export async function readAllEtcdStates(etcd: Etcd3, namespace: string): Promise<Map<string, State>> {
  const prefix = new Keys(namespace).statePrefix;
  const all = await etcd.getAll().prefix(prefix).strings();
  const states = new Map<string, State>();
  for (const [key, value] of Object.entries(all)) {
    try {
      states.set(key.slice(prefix.length), decodeState(value));
    } catch {
      // left out of the rows
    }
  }
  return states;
}
