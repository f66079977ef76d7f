/** The transition table and apply semantics, messages (T28) and the error policy (T19). */
import { describe, expect, test } from "bun:test";
import { backoffDelay, DEFAULT_BACKOFF, defaultErrorPolicy } from "../../src/statemachine/error-policy.ts";
import {
  describeMessage,
  describeState,
  errorMessage,
  messageProblem,
  normalizeHandlerResult,
  sleepMessage,
} from "../../src/statemachine/messages.ts";
import { allRules, applyMessage, nextStateCode } from "../../src/statemachine/rules.ts";
import type { StateError } from "../../src/statemachine/types.ts";

const task = { id: "t", props: {} };

describe("apply", () => {
  test("the table is Go's, row by row", () => {
    const table = Object.fromEntries(
      ["runnable", "sleeping", "paused", "fault"].map((from) => [
        from,
        allRules()
          .filter((r) => r.from === from)
          .map((r) => `${r.message}>${r.to}`)
          .join(" "),
      ]),
    );
    expect(table).toEqual({
      runnable:
        "run>runnable sleep>sleeping pause>paused kill>killed error>fault complete>completed checkpoint>runnable release>runnable",
      sleeping: "run>runnable sleep>sleeping pause>paused kill>killed error>fault checkpoint>sleeping release>sleeping",
      paused: "run>runnable sleep>sleeping pause>paused kill>killed checkpoint>paused release>paused",
      fault: "sleep>sleeping error>failed",
    });
    for (const terminal of ["completed", "failed", "killed"] as const)
      expect(nextStateCode(terminal, "run")).toBeUndefined();
  });

  test("errors accumulate and carry into every later state; until only on sleeping", () => {
    const t1 = new Date("2026-01-01T00:00:00Z");
    const t2 = new Date("2026-01-01T00:01:00Z");
    const fault = applyMessage({ code: "runnable" }, errorMessage("one"), t1)!;
    expect(fault).toEqual({ code: "fault", errors: [{ timestamp: t1, error: "one" }] });
    const asleep = applyMessage(fault, sleepMessage(t2))!;
    expect(asleep).toEqual({ code: "sleeping", until: t2, errors: fault.errors });
    const kept = applyMessage(asleep, { code: "release" })!;
    expect(kept.until).toEqual(t2);
    const awake = applyMessage(asleep, { code: "run" })!;
    expect(awake).toEqual({ code: "runnable", errors: fault.errors });
    expect(applyMessage(awake, { code: "complete" })).toEqual({ code: "completed", errors: fault.errors });
    expect(applyMessage({ code: "paused" }, { code: "complete" })).toBeUndefined();
  });
});

describe("messages (Go T28)", () => {
  test("the eight well-formed messages are valid", () => {
    for (const m of [
      { code: "run" },
      sleepMessage(new Date()),
      { code: "pause" },
      { code: "kill" },
      errorMessage("x"),
      { code: "complete" },
      { code: "checkpoint" },
      { code: "release" },
    ]) {
      expect(messageProblem(m)).toBeUndefined();
    }
  });

  test("empty, sleep without until and error without error are invalid", () => {
    expect(messageProblem({})).toContain("unknown message code");
    expect(messageProblem({ code: "sleep" })).toContain("needs an until");
    expect(messageProblem({ code: "error" })).toContain("needs an error");
    expect(messageProblem({ code: "sleep", until: new Date(NaN) })).toContain("invalid until");
    expect(messageProblem(null)).toContain("expected a message object");
  });

  test("handlers may return bare codes that need no argument", () => {
    expect(normalizeHandlerResult("complete")).toEqual({ message: { code: "complete" } });
    expect("problem" in normalizeHandlerResult("sleep")).toBe(true);
    expect("problem" in normalizeHandlerResult("done")).toBe(true);
  });

  test("string forms follow Go's", () => {
    expect(describeState({ code: "sleeping", until: new Date("2026-01-01T00:00:00Z") })).toBe(
      "sleeping until 2026-01-01T00:00:00.000Z",
    );
    expect(describeState({ code: "fault", errors: [{ timestamp: new Date(), error: "x" }] })).toBe("fault (1 errors)");
    expect(describeMessage(errorMessage("x"))).toBe("error: x");
  });
});

describe("default error policy (Go T19, with exponential back-off)", () => {
  const recent = (n: number, now: number): StateError[] =>
    Array.from({ length: n }, (_, i) => ({ timestamp: new Date(now - i * 1000), error: `e${i}` }));

  test("one recent error → sleep for the initial back-off, error kept", () => {
    const now = Date.now();
    const policy = defaultErrorPolicy({ now: () => now, random: () => 0 });
    const { message, errors } = policy(task, recent(1, now));
    expect(message.code).toBe("sleep");
    expect(message.until!.getTime()).toBe(now + DEFAULT_BACKOFF.initial);
    expect(errors.length).toBe(1);
  });

  test("ten recent errors → error (failed), at most 8 kept", () => {
    const now = Date.now();
    const { message, errors } = defaultErrorPolicy({ now: () => now })(task, recent(10, now));
    expect(message.code).toBe("error");
    expect(message.error).toBe("exceeded error rate: 10 errors within 4h");
    expect(errors.length).toBe(8);
    expect(errors.at(-1)!.error).toBe("e9");
  });

  test("errors older than the window do not count", () => {
    const now = Date.now();
    const old = Array.from({ length: 8 }, (_, i) => ({ timestamp: new Date(now - 5 * 3600_000 - i), error: "old" }));
    expect(defaultErrorPolicy({ now: () => now })(task, old).message.code).toBe("sleep");
  });

  test("back-off doubles up to the maximum, jitter only shortens it", () => {
    const b = { initial: 100, max: 1000, multiplier: 2, jitter: 0.5 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, b))).toEqual([100, 200, 400, 800, 1000, 1000]);
    const now = 1_000_000;
    const policy = defaultErrorPolicy({ maxErrors: 10, backoff: b, now: () => now, random: () => 1 });
    expect(policy(task, recent(3, now)).message.until!.getTime()).toBe(now + 200); // 400 × (1 − 0.5)
  });

  test("bad numbers are refused with the option named", () => {
    expect(() => defaultErrorPolicy({ maxErrors: 0 })).toThrow(/maxErrors is 0/);
    expect(() => defaultErrorPolicy({ window: -1 })).toThrow(/window/);
    expect(() => defaultErrorPolicy({ backoff: { initial: 10, max: 5 } })).toThrow(/backoff.max/);
    expect(() => defaultErrorPolicy({ backoff: { jitter: 2 } })).toThrow(/backoff.jitter/);
  });
});
