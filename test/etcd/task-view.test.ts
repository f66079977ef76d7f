/**
 * The task view's ranked announcements (no etcd needed: the view is fed a listing directly).
 * Tasks this node ranks first are announced at once, later ranks after a delay, and later
 * ranks are held back while the consumer still has plenty of announced tasks to try.
 */
import { expect, test } from "bun:test";
import { Keys } from "../../src/coordinators/etcd/keys.ts";
import { rendezvousRanks } from "../../src/coordinators/etcd/rendezvous.ts";
import { TaskView } from "../../src/coordinators/etcd/task-view.ts";
import type { MirrorKv } from "../../src/coordinators/etcd/watch.ts";
import { silentLogger } from "../../src/log.ts";
import type { CoordinatorContext } from "../../src/types.ts";
import { staysFalse, waitFor } from "../support/wait.ts";

const keys = new Keys("/view");
const nodes = ["a", "b"];

function listing(ids: readonly string[]): MirrorKv[] {
  return ids.map((id, i) => ({ key: keys.task(id), value: "", createRevision: i + 1, modRevision: i + 1, lease: "0" }));
}

function view(pending: () => number) {
  const announced = new Map<string, number>();
  const context: CoordinatorContext = {
    node: "a",
    log: silentLogger,
    announce: (task, rank) => announced.set(task.id, rank ?? 0),
    withdraw: () => {},
    pendingClaims: pending,
    command: () => {},
    lost: () => {},
    suspend: async () => {},
    resume: () => {},
  };
  const v = new TaskView({
    keys,
    node: "a",
    log: silentLogger,
    context: () => context,
    orphan: () => {},
    lost: () => {},
    liveNodes: () => nodes,
  });
  return { v, announced };
}

const ids = Array.from({ length: 200 }, (_, i) => `t${i}`);
const [first, second] = rendezvousRanks(ids, "a", nodes) as [string[], string[]];

test("tasks ranked first are announced at once, the others after the rank delay", async () => {
  expect(first.length).toBeGreaterThan(0);
  expect(second.length).toBeGreaterThan(0);
  const { v, announced } = view(() => 0);
  v.snapshot(listing(ids), ids.length);
  expect([...announced.keys()].sort()).toEqual([...first].sort());
  await waitFor("the second rank to be announced", () => announced.size === ids.length);
  for (const id of second) expect(announced.get(id)).toBe(1);
  v.close();
});

test("later ranks wait while the consumer has more than enough to try, and come once it has not", async () => {
  let pending = 5000;
  const { v, announced } = view(() => pending);
  v.snapshot(listing(ids), ids.length);
  expect(announced.size).toBe(first.length);
  // Several rank delays pass: nothing of the second rank is announced while the queue is long.
  await staysFalse("a second-rank announcement", () => announced.size > first.length, 600);
  pending = 0;
  await waitFor("the second rank once the queue drained", () => announced.size === ids.length);
  v.close();
});
