/**
 * A running task's inbox: commands (and the `release` a stop produces) wait here until the
 * current state takes them, in arrival order.
 *
 * The handler of a runnable state reads through a private view that is closed the moment the
 * handler returns. A loop the handler leaked can then never steal a later command (ref T21):
 * its pending read ends, and the command stays for the next state. To make "the moment the
 * handler returns" exact, messages are handed to views only at the start of a macrotask, when
 * the microtask queue is empty and so the machine has already seen any return that happened.
 * A message a handler's read received before it returned counts as taken by the handler.
 */
import { setImmediate } from "node:timers";
import { MAX_TIMER_DELAY } from "../internal/timers.ts";
import type { Message } from "./types.ts";

interface Taker {
  /** Handler views that were closed get `undefined` instead of a message. */
  isClosed(): boolean;
  deliver(message: Message | undefined): void;
}

export class Mailbox {
  private readonly queue: Message[] = [];
  private readonly takers: Taker[] = [];
  private scheduled = false;

  /** Queue a message for whichever state takes next. */
  push(message: Message): void {
    this.queue.push(message);
    this.schedule();
  }

  /** Take a queued message now, without waiting (used while draining at exit). */
  shift(): Message | undefined {
    return this.queue.shift();
  }

  get size(): number {
    return this.queue.length;
  }

  /**
   * Wait for the next message; with a deadline (epoch ms), resolve undefined once it passes.
   * Exactly one of the two happens, so a message is never taken and then lost to a timeout.
   */
  take(deadline?: number): Promise<Message | undefined> {
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let done = false;
      const taker: Taker = {
        isClosed: () => done,
        deliver: (m) => {
          if (done) return;
          done = true;
          if (timer !== undefined) clearTimeout(timer);
          resolve(m);
        },
      };
      if (deadline !== undefined) {
        const arm = (): void => {
          const remaining = deadline - Date.now();
          if (remaining <= 0) {
            this.remove(taker);
            taker.deliver(undefined);
            return;
          }
          timer = setTimeout(arm, Math.min(remaining, MAX_TIMER_DELAY));
        };
        arm();
        if (done) return;
      }
      this.takers.push(taker);
      this.schedule();
    });
  }

  /**
   * A private view for one handler execution: an async iterable of commands that ends when
   * `close()` is called (pending reads resolve as finished, later reads finish at once).
   */
  view(): { commands: AsyncIterable<Message>; close(): void } {
    let closed = false;
    const pending = new Set<Taker>();
    const read = (): Promise<IteratorResult<Message, undefined>> => {
      if (closed) return Promise.resolve({ done: true, value: undefined });
      return new Promise((resolve) => {
        const taker: Taker = {
          isClosed: () => closed,
          deliver: (m) => {
            pending.delete(taker);
            resolve(m === undefined ? { done: true, value: undefined } : { done: false, value: m });
          },
        };
        pending.add(taker);
        this.takers.push(taker);
        this.schedule();
      });
    };
    const commands: AsyncIterable<Message> = {
      [Symbol.asyncIterator]: () => {
        let finished = false;
        return {
          next: () => (finished ? Promise.resolve({ done: true, value: undefined }) : read()),
          return: () => {
            // Ends this iterator only (a `break` out of for-await); the view stays readable.
            finished = true;
            return Promise.resolve({ done: true, value: undefined });
          },
        };
      },
    };
    const close = (): void => {
      if (closed) return;
      closed = true;
      for (const taker of pending) {
        this.remove(taker);
        taker.deliver(undefined);
      }
    };
    return { commands, close };
  }

  private remove(taker: Taker): void {
    const i = this.takers.indexOf(taker);
    if (i >= 0) this.takers.splice(i, 1);
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0 || this.takers.length === 0) return;
    this.scheduled = true;
    // A macrotask (not a microtask): it runs only once the microtask queue is empty.
    setImmediate(() => {
      this.scheduled = false;
      this.deliver();
    });
  }

  private deliver(): void {
    while (this.queue.length > 0 && this.takers.length > 0) {
      const taker = this.takers.shift()!;
      if (taker.isClosed()) {
        taker.deliver(undefined);
        continue;
      }
      taker.deliver(this.queue.shift());
    }
  }
}
