/**
 * The watch must never miss a task: changes made between a listing and its watch, then
 * compacted away so the watch cannot replay them, are recovered by listing again. Malformed
 * values anywhere in the namespace are logged and skipped (or deleted) and the node keeps going.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { balance } from "../../src/command.ts";
import { Keys } from "../../src/coordinators/etcd/keys.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { waitFor } from "../support/wait.ts";
import {
  CapturingLogger,
  Cleanup,
  makeClient,
  makeCoordinator,
  rawClient,
  RecordingContext,
  uniqueNamespace,
} from "../etcd/helpers.ts";

let etcd: EtcdServer;
const cleanup = new Cleanup();
beforeAll(async () => {
  etcd = await startEtcd();
});
afterEach(() => cleanup.run());
afterAll(async () => {
  await etcd?.stop();
});

test("compaction past the watch's start revision: the node lists again and misses nothing", async () => {
  const ns = uniqueNamespace("compact");
  const keys = new Keys(ns);
  const raw = rawClient(etcd, cleanup);
  const client = makeClient(etcd, ns, cleanup);
  await client.submitTask("before");
  const resyncs: string[] = [];
  let armed = true;
  const ctx = new RecordingContext("node1");
  const c = makeCoordinator({
    etcd,
    namespace: ns,
    node: "node1",
    cleanup,
    options: {
      testHooks: {
        // Runs after the first listing and before its watch: everything here happens in the
        // gap the watch must replay, and the compaction makes that replay impossible.
        afterTaskList: async () => {
          if (!armed) return;
          armed = false;
          for (const id of ["gap-1", "gap-2", "gap-3", "gone"]) await client.submitTask(id);
          expect(await c.claim({ id: "before", props: {} })).toBeDefined();
          await raw.delete().key(keys.owner("before")).exec(); // our claim ends while unwatched
          await client.deleteTask("gone");
          const rev = Number((await raw.get(keys.task("gap-1")).exec()).header.revision);
          await raw.kv.compact({ revision: rev, physical: true });
        },
      },
    },
  });
  c.on("resync", ({ reason }) => resyncs.push(reason));
  await c.init(ctx);
  await waitFor("the gap's tasks to be announced", () =>
    ["gap-1", "gap-2", "gap-3"].every((id) => ctx.announcedIds().has(id)),
  );
  expect(resyncs.some((r) => r.startsWith("compacted"))).toBe(true);
  expect(ctx.announcedIds().has("gone")).toBe(false);
  await waitFor("the claim that ended in the gap to be reported lost", () =>
    ctx.lostCalls.some((l) => l.id === "before" && l.reason === "lost"),
  );
  expect(c.cluster.unclaimedCount()).toBe(4);
  // And the watch works after the relist.
  await client.submitTask("after");
  await waitFor("a task submitted after recovery", () => ctx.announcedIds().has("after"));
  expect(c.stats().state).toBe("active");
});

test("malformed props, owner, node command and task command values: logged, skipped or deleted, node keeps running", async () => {
  const ns = uniqueNamespace("malformed");
  const keys = new Keys(ns);
  const raw = rawClient(etcd, cleanup);
  const client = makeClient(etcd, ns, cleanup);
  // Before the node starts (seen by the listing)...
  await raw.put(keys.task("bad-props")).value("");
  await raw.put(keys.props("bad-props")).value("{not json");
  await raw.put(keys.task("array-props")).value("");
  await raw.put(keys.props("array-props")).value("[1,2]");
  await raw.put(keys.task("bad-owner")).value("");
  await raw.put(keys.owner("bad-owner")).value("garbage");
  await raw.put(`${keys.nodeCommandsPrefix("node1")}1`).value("not json");
  await client.submitTask("good");
  await raw.put(keys.taskCommands("good")).value("{{{");

  const log = new CapturingLogger();
  const ctx = new RecordingContext("node1");
  const c = makeCoordinator({ etcd, namespace: ns, node: "node1", cleanup, options: { log } });
  await c.init(ctx);
  expect([...ctx.announcedIds()]).toEqual(["good"]);
  expect(log.find(`${keys.props("bad-props")} are not JSON`, "warn").length).toBe(1);
  expect(log.find(`${keys.props("array-props")} are not a JSON object`, "warn").length).toBe(1);
  expect(log.find(`owner value at ${keys.owner("bad-owner")}`, "warn").length).toBe(1);
  await waitFor(
    "the malformed command to be logged and deleted",
    async () =>
      log.find(`malformed node command at ${keys.nodeCommandsPrefix("node1")}1`, "warn").length === 1 &&
      !(await raw.get(`${keys.nodeCommandsPrefix("node1")}1`).exists()),
  );
  expect(ctx.commands).toEqual([]);

  // ...and after (seen by the watch).
  await raw.put(keys.props("bad-props-2")).value("nope"); // props first, as a submit txn writes them
  await raw.put(keys.task("bad-props-2")).value("");
  await raw.put(`${keys.nodeCommandsPrefix("node1")}2`).value('{"parameters":{}}');
  await raw.put(keys.taskCommands("good")).value("not json either");
  await client.submitCommand("node1", balance());
  await waitFor("the valid command after the malformed ones", () => ctx.commands.length === 1);
  expect(ctx.commands[0]).toEqual(balance());
  expect(log.find(`malformed node command at ${keys.nodeCommandsPrefix("node1")}2`, "warn").length).toBe(1); // same watch, earlier
  // The tasks/ watch is a separate stream: no ordering with the command above.
  await waitFor(
    "the malformed props warning",
    () => log.find(`${keys.props("bad-props-2")} are not JSON`, "warn").length === 1,
  );
  expect(ctx.announcedIds().has("bad-props-2")).toBe(false);

  // A running task whose owner value is overwritten with garbage is lost.
  const claim = await c.claim(ctx.lastAnnounced("good")!);
  expect(claim).toBeDefined();
  await raw.put(keys.owner("good")).value("}}");
  await waitFor("lost(good)", () => ctx.lostCalls.some((l) => l.id === "good" && l.reason === "lost"));

  // Fixing the props makes the task claimable.
  await raw.put(keys.props("bad-props")).value('{"ok":true}');
  await waitFor("bad-props announced once fixed", () => ctx.lastAnnounced("bad-props")?.props.ok === true);
  await client.submitTask("after");
  await waitFor("the node still works", () => ctx.announcedIds().has("after"));
  expect(await c.claim({ id: "after", props: {} })).toBeDefined();
  expect(c.stats().state).toBe("active");
  expect(log.find("", "error")).toEqual([]);
});
