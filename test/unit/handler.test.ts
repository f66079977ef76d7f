/** routeTask, defineHandler, and the pending queue the claim loop drains. */
import { expect, test } from "bun:test";
import { PendingQueue } from "../../src/consumer/pending-queue.ts";
import { defineHandler, routeTask } from "../../src/handler.ts";

test("routeTask: props.handler wins, else the id before the first ':', else the whole id", () => {
  expect(routeTask({ id: "crawl:example.com", props: {} })).toBe("crawl");
  expect(routeTask({ id: "crawl:a:b", props: {} })).toBe("crawl");
  expect(routeTask({ id: "x:y", props: { handler: "mail" } })).toBe("mail");
  expect(routeTask({ id: "plain", props: {} })).toBe("plain");
  expect(routeTask({ id: ":odd", props: {} })).toBe(":odd");
  expect(routeTask({ id: "a:b", props: { handler: "" } })).toBe("a"); // empty string does not count
  expect(routeTask({ id: "a:b", props: { handler: 7 } })).toBe("a");
});

test("defineHandler returns the handler itself, typed; an async run returning one literal type-checks", async () => {
  // With Handler's `Promise<HandlerResult> | HandlerResult`, TypeScript would widen this "done" to string.
  const single = defineHandler({
    async run() {
      return "done";
    },
  });
  expect(await single.run({ id: "x", props: {} }, undefined as never)).toBe("done");
  const h = defineHandler<{ n: number }>({
    name: "double",
    run: async (task) => (task.props.n > 1 ? "done" : "release"),
  });
  expect(h.name).toBe("double");
  const ctx = undefined as never;
  expect(await h.run({ id: "double:1", props: { n: 2 } }, ctx)).toBe("done");
});

test("PendingQueue: dedups by id keeping the first place and the latest task, drains in order, survives churn", () => {
  const q = new PendingQueue();
  q.put({ id: "a", props: { v: 1 } });
  q.put({ id: "b", props: {} });
  q.put({ id: "a", props: { v: 2 } });
  expect(q.size).toBe(2);
  expect(q.take()).toEqual({ id: "a", props: { v: 2 } });
  expect(q.delete("b")).toBe(true);
  expect(q.take()).toBeUndefined();
  for (let i = 0; i < 10_000; i++) {
    q.put({ id: `x${i % 3}`, props: {} });
    q.delete(`x${i % 3}`);
  }
  expect(q.size).toBe(0);
  for (let i = 0; i < 5000; i++) q.put({ id: `t${i}`, props: {} });
  const ids: string[] = [];
  for (let t = q.take(); t; t = q.take()) ids.push(t.id);
  expect(ids).toHaveLength(5000);
  expect(ids[0]).toBe("t0");
  expect(ids[4999]).toBe("t4999");
});
