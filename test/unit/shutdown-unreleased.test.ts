/** A shutdown whose releases fail is not a clean one: the report names the tasks left claimed. */
import { expect, test } from "bun:test";
import { Consumer } from "../../src/consumer/consumer.ts";
import { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import type { Coordinator } from "../../src/types.ts";
import { waitFor } from "../support/wait.ts";
import { blockingHandler, captureLog } from "./helpers.ts";

test("releases that fail during shutdown are reported in ShutdownReport.unreleased, with one line each and no stack", async () => {
  const broker = new MemoryBroker();
  const inner = broker.coordinator("n1");
  let failReleases = false;
  const coordinator: Coordinator = Object.create(inner, {
    release: {
      value: (t: { id: string }) =>
        failReleases ? Promise.reject(new Error("etcd is gone")) : inner.release(t as never),
    },
  });
  const log = captureLog();
  const h = blockingHandler();
  const c = new Consumer({ coordinator, node: "n1", handler: h.handler, balanceEvery: Infinity, log });
  await c.start();
  await broker.client().submitTask("a");
  await broker.client().submitTask("b");
  await waitFor("both running", () => c.tasks().length === 2);
  failReleases = true;
  const report = await c.shutdown({ timeout: 2000 });
  expect(report.clean).toBe(true);
  expect(report.unreleased).toEqual(["a", "b"]);
  const lines = log.lines.filter((l) => l.level === "error" && l.message.includes("etcd is gone"));
  expect(lines.map((l) => l.message).sort()).toEqual([
    "release of a failed: etcd is gone",
    "release of b failed: etcd is gone",
  ]);
});
