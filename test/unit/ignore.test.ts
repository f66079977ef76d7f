/** The ignore list (Go's T7), and its deadlock-free design (Go's monitor could deadlock). */
import { expect, test } from "bun:test";
import { IgnoreList } from "../../src/consumer/ignore-list.ts";
import type { Task } from "../../src/types.ts";
import { staysFalse, waitFor } from "../support/wait.ts";

const task = (id: string): Task => ({ id, props: {} });

test("T7: an entry is ignored until its deadline; a 10 ms entry added after a 200 ms one comes out first, neither early", async () => {
  const out: { id: string; at: number }[] = [];
  const list = new IgnoreList((t) => out.push({ id: t.id, at: Date.now() }));
  const t0 = Date.now();
  list.add(task("1"), t0 + 200);
  expect(list.has("1")).toBe(true);
  list.add(task("2"), Date.now() + 10);
  expect(list.ids().sort()).toEqual(["1", "2"]);
  await waitFor("both entries to expire", () => out.length === 2, { timeout: 5000 });
  expect(out.map((o) => o.id)).toEqual(["2", "1"]);
  expect(out[1]!.at).toBeGreaterThanOrEqual(t0 + 200 - 2); // timers may fire up to ~1 ms early
  expect(list.has("1")).toBe(false);
  expect(list.size).toBe(0);
  list.close();
});

test("re-adding an id replaces its deadline; delete forgets it without re-announcing", async () => {
  const out: string[] = [];
  const list = new IgnoreList((t) => out.push(t.id));
  list.add(task("a"), Date.now() + 20);
  list.add(task("a"), Date.now() + 60_000); // replaced: the 20 ms entry is stale
  list.add(task("b"), Date.now() + 20);
  list.delete("b");
  await staysFalse("a replaced or deleted entry to come out", () => out.length > 0, 150);
  expect(list.ids()).toEqual(["a"]);
  list.close();
  expect(list.ids()).toEqual([]);
});

test("past deadlines expire on the next timer turn, never synchronously; onExpire may add again (no deadlock)", async () => {
  const out: string[] = [];
  const list: IgnoreList = new IgnoreList((t) => {
    out.push(t.id);
    if (out.length < 5) list.add(t, Date.now() - 1); // re-ignore from inside the callback
  });
  list.add(task("x"), Date.now() - 1000);
  expect(out).toEqual([]);
  await waitFor("five expiries of the re-added entry", () => out.length === 5, { timeout: 5000 });
  list.close();
});

test("many entries come out in deadline order, with one timer", async () => {
  const out: number[] = [];
  const list = new IgnoreList((t) => out.push(Number(t.id)));
  const base = Date.now() + 30;
  const order = Array.from({ length: 200 }, (_, i) => (i * 7919) % 200); // a permutation
  for (const i of order) list.add(task(String(i)), base + i);
  await waitFor("200 expiries", () => out.length === 200, { timeout: 5000 });
  expect(out).toEqual([...out].sort((a, b) => a - b));
  list.close();
});

test("after close nothing comes out and adds are ignored", async () => {
  const out: string[] = [];
  const list = new IgnoreList((t) => out.push(t.id));
  list.add(task("a"), Date.now() + 10);
  list.close();
  list.add(task("b"), Date.now() + 10);
  await staysFalse("an entry to come out after close", () => out.length > 0, 100);
});

test("forgetWithdrawn drops only entries added with dropOnWithdraw (balancer deferrals, not back-offs)", () => {
  const list = new IgnoreList(() => {});
  list.add(task("deferred"), Date.now() + 60_000, { dropOnWithdraw: true });
  list.add(task("backoff"), Date.now() + 60_000);
  list.forgetWithdrawn("deferred");
  list.forgetWithdrawn("backoff");
  list.forgetWithdrawn("unknown");
  expect(list.ids()).toEqual(["backoff"]);
  list.close();
});
