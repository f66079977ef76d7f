/**
 * A tiny typed event emitter (web-standard code only, so it runs on Bun and Deno alike).
 * A listener that throws is logged and does not disturb the emitter or other listeners.
 */
import { describeError } from "./errors.ts";
import type { Logger } from "./types.ts";

export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<(payload: never) => void>>();

  constructor(private readonly log: Logger) {}

  /** Subscribe; returns the unsubscribe function. */
  on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const l = listener as (payload: never) => void;
    set.add(l);
    return () => {
      set.delete(l);
    };
  }

  emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) return;
    for (const listener of [...set]) {
      try {
        (listener as (payload: Events[E]) => void)(payload);
      } catch (err) {
        this.log.error(`"${String(event)}" event listener threw: ${describeError(err)}`);
      }
    }
  }
}
