/** PendingQueue ranks: lower ranks drain first, announcement order within a rank, repeats keep their place. */
import { expect, test } from "bun:test";
import { PendingQueue } from "../../src/consumer/pending-queue.ts";

const t = (id: string, n = 0) => ({ id, props: { n } });

test("lower ranks are taken first; within a rank, first announced first", () => {
  const q = new PendingQueue();
  q.put(t("b1"), 1);
  q.put(t("a1"), 0);
  q.put(t("c1"), 2);
  q.put(t("b2"), 1);
  q.put(t("a2"));
  q.put(t("b1", 7), 0); // a repeat refreshes the task but keeps its place (rank 1)
  expect(q.size).toBe(5);
  const first = q.take();
  expect(first?.id).toBe("a1");
  q.put(t("a3"), 0); // a new rank-0 task still goes before the rank-1 ones
  const rest: string[] = [];
  for (let x = q.take(); x; x = q.take()) rest.push(x.id);
  expect(rest).toEqual(["a2", "a3", "b1", "b2", "c1"]);
  expect(q.size).toBe(0);
  expect(q.take()).toBeUndefined();
});

test("deletes and churn across ranks never return a withdrawn task and stay bounded", () => {
  const q = new PendingQueue();
  for (let i = 0; i < 20_000; i++) {
    q.put(t(`x${i}`), i % 3);
    if (i % 2 === 0) q.delete(`x${i}`);
  }
  expect(q.size).toBe(10_000);
  const seen = new Set<string>();
  let last = 0;
  for (let x = q.take(); x; x = q.take()) {
    const i = Number(x.id.slice(1));
    expect(i % 2).toBe(1);
    expect(i % 3).toBeGreaterThanOrEqual(last);
    last = i % 3;
    seen.add(x.id);
  }
  expect(seen.size).toBe(10_000);
});
