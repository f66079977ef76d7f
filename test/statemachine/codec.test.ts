/**
 * Interop with Go Metafora's JSON (docs/wire-format.md): Go's own examples decode, ours have Go's shape,
 * and times follow RFC 3339 with up to 9 fractional digits read.
 */
import { describe, expect, test } from "bun:test";
import {
  decodeMessage,
  decodeState,
  encodeMessage,
  encodeState,
  formatTime,
  parseTime,
  UNKNOWN_GO_ERROR,
} from "../../src/statemachine/codec.ts";

describe("times", () => {
  test("RFC 3339 with 0–9 fractional digits, Z or an offset, is read (nanoseconds truncated to ms)", () => {
    expect(parseTime("2026-11-22T15:30:02.53814641Z").toISOString()).toBe("2026-11-22T15:30:02.538Z");
    expect(parseTime("2026-11-22T14:40:02.540968101Z").toISOString()).toBe("2026-11-22T14:40:02.540Z");
    expect(parseTime("2026-11-22T15:30:02Z").toISOString()).toBe("2026-11-22T15:30:02.000Z");
    expect(parseTime("2026-11-22T15:30:02.5Z").toISOString()).toBe("2026-11-22T15:30:02.500Z");
    expect(parseTime("2026-11-22T17:30:02.123456789+02:00").toISOString()).toBe("2026-11-22T15:30:02.123Z");
    expect(parseTime("2026-11-22T10:00:00-05:30").toISOString()).toBe("2026-11-22T15:30:00.000Z");
    expect(parseTime("0001-01-01T00:00:00Z").getUTCFullYear()).toBe(1); // Go's zero time
  });

  test("malformed times are refused with the text named", () => {
    for (const bad of [
      "",
      "2026-11-22",
      "2026-11-22 15:30:02Z",
      "2026-11-22T15:30:02",
      "2026-11-22T15:30:02.1234567891Z",
      "2026-13-01T00:00:00Z",
      "2026-02-30T00:00:00Z",
      "2026-11-22T24:00:00Z",
      "2026-11-22T15:30:02+2:00",
    ]) {
      expect(() => parseTime(bad)).toThrow(/time ".*"/);
    }
  });

  test("written as UTC with milliseconds, trailing zeros trimmed like Go's RFC3339Nano", () => {
    expect(formatTime(new Date("2026-11-22T15:30:02.538Z"))).toBe("2026-11-22T15:30:02.538Z");
    expect(formatTime(new Date("2026-11-22T15:30:02.530Z"))).toBe("2026-11-22T15:30:02.53Z");
    expect(formatTime(new Date("2026-11-22T15:30:02.000Z"))).toBe("2026-11-22T15:30:02Z");
    const now = new Date();
    expect(parseTime(formatTime(now)).getTime()).toBe(now.getTime());
  });
});

describe("state JSON", () => {
  test("Go's observed examples decode", () => {
    const sleeping = decodeState(
      '{"state":"sleeping","until":"2026-11-22T14:40:02.540968101Z","errors":[{"timestamp":"2026-11-22T14:30:02.540336657Z","error":"boom"}]}',
    );
    expect(sleeping.code).toBe("sleeping");
    expect(sleeping.until?.toISOString()).toBe("2026-11-22T14:40:02.540Z");
    expect(sleeping.errors).toEqual([{ timestamp: new Date("2026-11-22T14:30:02.540Z"), error: "boom" }]);
    expect(decodeState('{"state":"completed"}')).toEqual({ code: "completed" });
    expect(decodeState('{"state":"killed"}')).toEqual({ code: "killed" });
    expect(decodeState('{"state":"runnable"}')).toEqual({ code: "runnable" });
    // Go nil pointers and empty slices, and unknown fields, are tolerated.
    expect(decodeState('{"state":"paused","until":null,"errors":null,"extra":1}')).toEqual({ code: "paused" });
    expect(decodeState('{"state":"fault","errors":[]}')).toEqual({ code: "fault" });
  });

  test("ours is byte-for-byte Go's shape: field order, omitempty, escaping", () => {
    expect(encodeState({ code: "runnable" })).toBe('{"state":"runnable"}');
    expect(encodeState({ code: "fault", errors: [] })).toBe('{"state":"fault"}');
    expect(
      encodeState({
        code: "sleeping",
        until: new Date("2026-11-22T14:40:02.540Z"),
        errors: [{ timestamp: new Date("2026-11-22T14:30:02.5Z"), error: "a <b> & c" }],
      }),
    ).toBe(
      '{"state":"sleeping","until":"2026-11-22T14:40:02.54Z","errors":[{"timestamp":"2026-11-22T14:30:02.5Z","error":"a \\u003cb\\u003e \\u0026 c"}]}',
    );
  });

  test("ours decodes back to the same state", () => {
    const state = { code: "fault" as const, errors: [{ timestamp: new Date(), error: "x\ny" }] };
    expect(decodeState(encodeState(state))).toEqual(state);
  });

  test("malformed state JSON gives a clear error, never a crash", () => {
    expect(() => decodeState("not json")).toThrow(/state is not JSON/);
    expect(() => decodeState("[1]")).toThrow(/not a JSON object/);
    expect(() => decodeState('{"state":"dozing"}')).toThrow(/"dozing"; expected one of runnable/);
    expect(() => decodeState('{"state":"sleeping","until":5}')).toThrow(/state.until is number/);
    expect(() => decodeState('{"state":"fault","errors":{}}')).toThrow(/state.errors is object/);
    expect(() => decodeState('{"state":"fault","errors":[{"timestamp":"2026-11-22T14:30:02Z"}]}')).toThrow(
      /errors\[0\].error/,
    );
  });
});

describe("command JSON", () => {
  test("Go's commands decode, including an error Go encoded as {}", () => {
    expect(decodeMessage('{"message":"pause"}')).toEqual({ code: "pause" });
    expect(decodeMessage('{"message":"kill"}')).toEqual({ code: "kill" });
    expect(decodeMessage('{"message":"sleep","until":"2026-11-22T15:30:02.53814641Z"}')).toEqual({
      code: "sleep",
      until: new Date("2026-11-22T15:30:02.538Z"),
    });
    expect(decodeMessage('{"message":"error","error":{}}')).toEqual({ code: "error", error: UNKNOWN_GO_ERROR });
  });

  test("ours has Go's shape; error text travels in error_text, never in Go's error field", () => {
    expect(encodeMessage({ code: "pause" })).toBe('{"message":"pause"}');
    expect(encodeMessage({ code: "sleep", until: new Date("2026-11-22T15:30:02.538Z") })).toBe(
      '{"message":"sleep","until":"2026-11-22T15:30:02.538Z"}',
    );
    expect(encodeMessage({ code: "error", error: new Error("disk full") })).toBe(
      '{"message":"error","error_text":"disk full"}',
    );
    expect(decodeMessage(encodeMessage({ code: "error", error: "disk full" }))).toEqual({
      code: "error",
      error: "disk full",
    });
    // Go decodes a Message with encoding/json: its `error` field is an error interface, which
    // only null (or absence) decodes into. Every code we can encode must leave it absent.
    for (const message of [
      { code: "error" as const, error: "x" },
      { code: "sleep" as const, until: new Date() },
      { code: "kill" as const },
      { code: "error" as const, error: new Error("y") },
    ]) {
      const wire = JSON.parse(encodeMessage(message)) as Record<string, unknown>;
      expect(wire.error ?? null).toBeNull();
      expect(Object.keys(wire).every((k) => ["message", "until", "error_text"].includes(k))).toBe(true);
    }
  });

  test("the earlier form with the text in error still decodes", () => {
    expect(decodeMessage('{"message":"error","error":"disk full"}')).toEqual({ code: "error", error: "disk full" });
    expect(decodeMessage('{"message":"error","error":{},"error_text":"boom"}')).toEqual({
      code: "error",
      error: "boom",
    });
    expect(() => decodeMessage('{"message":"error","error_text":5}')).toThrow(/command.error_text is number/);
  });

  test("malformed or invalid commands are refused with the reason", () => {
    expect(() => decodeMessage("{oops")).toThrow(/command is not JSON/);
    expect(() => decodeMessage('{"message":"nap"}')).toThrow(/"nap"; expected one of run/);
    expect(() => decodeMessage('{"message":"sleep"}')).toThrow(/needs an until/);
    expect(() => decodeMessage('{"message":"error"}')).toThrow(/needs an error/);
    expect(() => decodeMessage('{"message":"error","error":3}')).toThrow(/command.error is number/);
    expect(() => encodeMessage({ code: "sleep" })).toThrow(/needs an until/);
  });
});
