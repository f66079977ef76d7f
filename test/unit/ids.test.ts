/** The one rule for task ids and node names, applied the same by memory, etcd, config and operator checks. */
import { describe, expect, test } from "bun:test";
import { invalidNodeNameReason, invalidTaskIdReason } from "../../src/coordinators/etcd/keys.ts";
import { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import { invalidNameReason, MAX_NAME_BYTES } from "../../src/ids.ts";
import { checkNodeName, checkTaskId } from "../../src/runtime/operator/validate.ts";

const good = [
  "a",
  "report:42",
  "batch:nightly",
  "node-1@host",
  "résumé",
  "x".repeat(MAX_NAME_BYTES),
  "a.b",
  "...",
  "_metafora2",
  "with space",
];
const bad: [unknown, RegExp][] = [
  ["", /non-empty/],
  [42, /non-empty string, got number/],
  [null, /got null/],
  ["a/b", /must not contain '\/'/],
  [".", /reserved/],
  ["..", /reserved/],
  ["_metafora", /reserved/],
  ["a\nb", /control characters/],
  ["a\u0000", /control characters/],
  ["a\u007f", /control characters/],
  [" lead", /white space/],
  ["trail\t", /control characters|white space/],
  ["\ud800x", /lone surrogate/],
  ["é".repeat(MAX_NAME_BYTES / 2 + 1), /bytes long/],
];

describe("one rule for ids and node names", () => {
  test("good names pass every checker", () => {
    const broker = new MemoryBroker();
    for (const id of good) {
      expect(invalidNameReason("task id", id)).toBeUndefined();
      expect(invalidTaskIdReason(id)).toBeUndefined();
      expect(invalidNodeNameReason(id)).toBeUndefined();
      expect(checkTaskId(id)).toBe(id);
      expect(checkNodeName(id)).toBe(id);
      expect(() => broker.coordinator(id)).not.toThrow();
    }
  });

  for (const [value, why] of bad) {
    test(`${JSON.stringify(value)?.slice(0, 30)} is refused by every checker, saying why and what is expected`, async () => {
      const broker = new MemoryBroker();
      for (const message of [
        invalidTaskIdReason(value),
        invalidNodeNameReason(value),
        catchMessage(() => checkTaskId(value)),
        catchMessage(() => checkNodeName(value)),
        catchMessage(() => broker.coordinator(value as string)),
        await broker
          .client()
          .submitTask(value as string)
          .then(
            () => undefined,
            (e: Error) => e.message,
          ),
      ]) {
        expect(message).toMatch(why);
        expect(message).toContain("expected a");
        expect(message).toContain("no '/'");
      }
      expect(await broker.client().tasks()).toEqual([]);
    });
  }
});

function catchMessage(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
