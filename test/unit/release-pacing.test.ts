/**
 * Release pacing: no handler result makes a node spin. A task handed back soon after its claim
 * is backed off on that node, doubling per repeat, logged once per streak, counted in an event.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { Consumer } from "../../src/consumer/consumer.ts";
import { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import { ConfigError } from "../../src/errors.ts";
import { ReleasePacer } from "../../src/consumer/release-pacing.ts";
import type { Handler } from "../../src/types.ts";
import { sleep, waitFor } from "../support/wait.ts";
import { captureLog, consumerOn } from "./helpers.ts";

const live: Consumer[] = [];
afterEach(async () => {
  await Promise.all(live.splice(0).map((c) => c.shutdown({ timeout: 1000 })));
});

function counting(result: unknown): Handler & { runs: number } {
  const h = {
    runs: 0,
    async run() {
      h.runs++;
      return result as "release";
    },
  };
  return h;
}

describe("ReleasePacer", () => {
  test("doubles per quick release up to max; a long run resets the streak", () => {
    const p = new ReleasePacer({ within: 1000, initial: 100, max: 350 });
    expect(p.released("a", 5)).toEqual({ delay: 100, repeats: 1, first: true });
    expect(p.released("a", 5)).toEqual({ delay: 200, repeats: 2, first: false });
    expect(p.released("a", 5)).toEqual({ delay: 350, repeats: 3, first: false });
    for (let i = 0; i < 2000; i++) p.released("a", 5);
    expect(p.released("a", 5)?.delay).toBe(350); // no overflow to NaN/Infinity
    expect(p.released("a", 1000)).toBeUndefined();
    expect(p.released("a", 5)).toEqual({ delay: 100, repeats: 1, first: true });
    expect(p.released("b", 0)?.repeats).toBe(1);
  });

  test("within 0 disables it", () => {
    const p = new ReleasePacer({ within: 0, initial: 100, max: 100 });
    expect(p.released("a", 0)).toBeUndefined();
    expect(p.size).toBe(0);
  });

  test("bad options name the field", () => {
    expect(ReleasePacer.problem({ within: 1, initial: 10, max: 5 })).toMatch(/max \(5\) must be >= initial \(10\)/);
    expect(ReleasePacer.problem({ within: -1, initial: 1, max: 1 })).toMatch(/within must be/);
    const broker = new MemoryBroker();
    expect(
      () =>
        new Consumer({
          coordinator: broker.coordinator("n"),
          node: "n",
          handler: counting("release"),
          releasePacing: { initial: Number.NaN },
        }),
    ).toThrow(ConfigError);
  });
});

describe("consumer release pacing", () => {
  for (const [label, result] of [
    ['returns "release" at once', "release"],
    ["returns an invalid result at once", 42],
  ] as const) {
    test(`a handler that ${label} is paced, logged once, and counted`, async () => {
      const broker = new MemoryBroker();
      const log = captureLog();
      const handler = counting(result);
      const c = consumerOn(broker, "n1", { handler, log, releasePacing: { within: 1000, initial: 150, max: 300 } });
      live.push(c);
      const backoffs: { delay: number; repeats: number }[] = [];
      c.on("releaseBackoff", (e) => backoffs.push({ delay: e.delay, repeats: e.repeats }));
      await c.start();
      await broker.client().submitTask("spin");
      await waitFor("three back-offs", () => backoffs.length >= 3, { timeout: 5000 });
      // Without pacing this is hundreds of thousands of runs in the same time.
      expect(handler.runs).toBeLessThanOrEqual(5);
      expect(backoffs.slice(0, 3).map((b) => b.delay)).toEqual([150, 300, 300]);
      const warnings = log.lines.filter((l) => l.level === "warn" && l.message.includes("spin"));
      expect(warnings.length).toBe(1);
      expect(warnings[0]!.message).toMatch(/not claiming it here for 150 ms/);
      if (result !== "release")
        expect(warnings[0]!.message).toMatch(/returned 42; expected "done" or "release"; releasing/);
      expect(c.ignoredUntil("spin")).toBeGreaterThan(Date.now() - 1);
      // The task is never dropped: it stays in the coordinator, unowned between runs.
      expect((await broker.client().tasks()).map((t) => t.id)).toEqual(["spin"]);
    });
  }

  test("a release after a long enough run is not paced; a stop the node asked for never counts", async () => {
    const broker = new MemoryBroker();
    let runs = 0;
    const handler: Handler = {
      run: (_task, ctx) =>
        new Promise((resolve) => {
          runs++;
          ctx.signal.addEventListener("abort", () => resolve("release"), { once: true });
        }),
    };
    const c = consumerOn(broker, "n1", { handler, releasePacing: { within: 10_000, initial: 60_000, max: 60_000 } });
    live.push(c);
    let backoffs = 0;
    c.on("releaseBackoff", () => backoffs++);
    await c.start();
    await broker.client().submitTask("t");
    await waitFor("first run", () => runs === 1);
    c.stopTask("t", "command");
    await waitFor("claimed again at once", () => runs === 2, { timeout: 5000 });
    await sleep(50);
    expect(backoffs).toBe(0);
  });
});
