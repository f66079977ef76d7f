import { describe, expect, test } from "bun:test";
import { toTaskRow } from "../../src/runtime/operator/task-rows.ts";
import { HISTORY_LIMIT, MemoryTaskHistory } from "../../src/runtime/history/task-history.ts";

describe("MemoryTaskHistory (etcd: what this node saw)", () => {
  test("keeps the last 50 events per task and counts every attempt and error", async () => {
    const h = new MemoryTaskHistory();
    for (let i = 0; i < 70; i++)
      h.record("t", {
        at: new Date(Date.UTC(2030, 0, 1, 0, 0, i)).toISOString(),
        kind: "claimed",
        node: "n",
        token: i + 1,
      });
    h.record("t", { at: "2030-01-01T01:00:00.000Z", kind: "error", message: "boom" });
    const events = await h.events("t");
    expect(events.length).toBe(HISTORY_LIMIT);
    expect(events[0]!.token).toBe(22);
    expect(events.at(-1)).toMatchObject({ kind: "error", message: "boom" });
    expect(await h.summary("t")).toEqual({
      attempts: 70,
      errors: 1,
      lastError: { at: "2030-01-01T01:00:00.000Z", message: "boom" },
    });
  });

  test("forgets the tasks touched longest ago beyond its task bound", async () => {
    const h = new MemoryTaskHistory(3);
    for (const id of ["a", "b", "c", "d"]) h.record(id, { at: "2030-01-01T00:00:00.000Z", kind: "submitted" });
    h.record("b", { at: "2030-01-01T00:00:01.000Z", kind: "claimed" });
    h.record("e", { at: "2030-01-01T00:00:02.000Z", kind: "submitted" });
    expect([...(await h.summaries()).keys()].sort()).toEqual(["b", "d", "e"]);
  });
});

describe("task rows", () => {
  test("rows gain handler, state, attempts/errors, last error, next retry and checkpoint from what is known", () => {
    const now = Date.parse("2030-01-01T00:00:00.000Z");
    const row = toTaskRow(
      { id: "crawl:1", props: { depth: 1 } },
      {
        states: new Map([["crawl:1", { code: "fault", errors: [{ timestamp: new Date(now), error: "x" }] }]]),
        summaries: new Map([
          ["crawl:1", { attempts: 3, errors: 2, lastError: { at: "2029-12-31T23:59:59.000Z", message: "503" } }],
        ]),
        checkpoints: new Map([["crawl:1", { bytes: 12, at: "2029-12-31T23:00:00.000Z" }]]),
        retryAt: () => now + 4000,
        now,
      },
    );
    expect(row).toEqual({
      id: "crawl:1",
      props: { depth: 1 },
      handler: "crawl",
      state: { code: "fault", errors: 1 },
      attempts: 3,
      errors: 2,
      lastError: { at: "2029-12-31T23:59:59.000Z", message: "503" },
      nextRetry: "2030-01-01T00:00:04.000Z",
      checkpoint: { bytes: 12, at: "2029-12-31T23:00:00.000Z" },
    });
    // Owned: no next retry; a sleeping state's wake-up is its next try; unknowns stay absent.
    expect(toTaskRow({ id: "crawl:1", props: {}, owner: "n", token: 9 }, { retryAt: () => now + 4000, now })).toEqual({
      id: "crawl:1",
      props: {},
      owner: "n",
      token: 9,
      handler: "crawl",
    });
    const until = new Date(now + 60_000);
    expect(
      toTaskRow({ id: "j", props: { handler: "job" } }, { states: new Map([["j", { code: "sleeping", until }]]), now }),
    ).toMatchObject({
      handler: "job",
      state: { code: "sleeping", until: until.toISOString() },
      nextRetry: until.toISOString(),
    });
  });
});
