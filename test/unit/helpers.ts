/** Shared bits for the consumer and memory-broker tests (not a test file itself). */
import { Consumer, type ConsumerEvents, type ConsumerOptions } from "../../src/consumer/consumer.ts";
import type { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import type { Coordinator, CoordinatorContext, Handler, HandlerContext, Task } from "../../src/types.ts";
import { CapturingLogger } from "../support/logger.ts";

/** A logger that keeps every line, for asserting what was logged (test/support/logger.ts). */
export function captureLog(): CapturingLogger {
  return new CapturingLogger(false);
}

/** Records what a consumer emits, in order. */
export function recordEvents(c: Consumer): {
  all: { event: keyof ConsumerEvents; payload: unknown }[];
  ids(event: keyof ConsumerEvents): string[];
} {
  const all: { event: keyof ConsumerEvents; payload: unknown }[] = [];
  const names: (keyof ConsumerEvents)[] = [
    "claimed",
    "claimMissed",
    "released",
    "done",
    "lost",
    "handlerError",
    "suspended",
    "resumed",
    "command",
    "stopped",
  ];
  for (const event of names) c.on(event, (payload) => all.push({ event, payload }));
  return {
    all,
    ids: (event) =>
      all
        .filter((e) => e.event === event)
        .map((e) => {
          const p = e.payload as { taskId?: string; task?: Task };
          return p.taskId ?? p.task?.id ?? "";
        }),
  };
}

/**
 * A handler whose runs are visible and controllable: each run waits for its signal (or for
 * `finish(id, result)`) and returns "release" on abort unless told otherwise.
 */
export function blockingHandler(name?: string) {
  const started: { id: string; ctx: HandlerContext }[] = [];
  const active = new Map<string, HandlerContext>();
  const finishers = new Map<string, (r: "done" | "release") => void>();
  const handler: Handler & { name?: string } = {
    ...(name ? { name } : {}),
    run(task, ctx) {
      started.push({ id: task.id, ctx });
      active.set(task.id, ctx);
      return new Promise((resolve) => {
        finishers.set(task.id, resolve);
        ctx.signal.addEventListener("abort", () => resolve("release"), { once: true });
      }).finally(() => {
        active.delete(task.id);
        finishers.delete(task.id);
      }) as Promise<"done" | "release">;
    },
  };
  return {
    handler,
    started,
    active,
    finish(id: string, result: "done" | "release"): void {
      const f = finishers.get(id);
      if (!f) throw new Error(`task ${id} is not running in this handler`);
      f(result);
    },
  };
}

/** Wraps a coordinator to expose the context the consumer gave it (to drive lost/suspend). */
export function exposeContext(inner: Coordinator): Coordinator & { ctx(): CoordinatorContext } {
  let captured: CoordinatorContext | undefined;
  return {
    get name() {
      return inner.name;
    },
    get cluster() {
      return inner.cluster;
    },
    get client() {
      return inner.client;
    },
    init(ctx) {
      captured = ctx;
      return inner.init(ctx);
    },
    claim: (t) => inner.claim(t),
    release: (t) => inner.release(t),
    done: (t) => inner.done(t),
    claimDeadline: () => inner.claimDeadline(),
    close: () => inner.close(),
    ctx() {
      if (!captured) throw new Error("coordinator not initialised");
      return captured;
    },
  };
}

/** A consumer on `broker` with test-friendly defaults (quiet log, no periodic or membership balance). */
export function consumerOn(
  broker: MemoryBroker,
  node: string,
  opts:
    | (Partial<ConsumerOptions> & Pick<ConsumerOptions, "handler">)
    | (Partial<ConsumerOptions> & Pick<ConsumerOptions, "handlers">),
): Consumer {
  return new Consumer({
    coordinator: broker.coordinator(node),
    node,
    balanceEvery: Infinity,
    rebalance: false,
    log: captureLog(),
    ...opts,
  });
}
