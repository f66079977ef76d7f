/**
 * The node lease: keepalive metrics, event-loop stalls treated as possible lease loss, and the
 * suspend → revoke → rejoin cycle (consumer replaced by a RecordingContext).
 */
import { afterEach, expect, test } from "bun:test";
import { Keys } from "../../src/coordinators/etcd/keys.ts";
import { useEtcd } from "../support/use-etcd.ts";
import { deferred, waitFor } from "../support/wait.ts";
import { Cleanup, makeClient, makeCoordinator, rawClient, RecordingContext, uniqueNamespace } from "./helpers.ts";

const etcd = useEtcd();
const cleanup = new Cleanup();
afterEach(() => cleanup.run());

test("keepalive latency and event-loop lag are reported for metrics", async () => {
  const c = makeCoordinator({ etcd, namespace: uniqueNamespace("metrics"), node: "n", cleanup });
  const keepalives: { latencyMs: number; deadline: number }[] = [];
  const lags: number[] = [];
  c.on("keepalive", (k) => keepalives.push(k));
  c.on("loopLag", ({ maxMs }) => lags.push(maxMs));
  await c.init(new RecordingContext("n"));
  await waitFor("two keepalives and a lag sample", () => keepalives.length >= 2 && lags.length >= 1, { timeout: 5000 });
  expect(keepalives.every((k) => k.latencyMs >= 0 && k.latencyMs < 2000)).toBe(true);
  expect(keepalives[1]!.deadline).toBeGreaterThanOrEqual(keepalives[0]!.deadline);
  expect(lags[0]).toBeGreaterThanOrEqual(0);
  expect(c.stats().keepaliveLatencyMs).toBeGreaterThanOrEqual(0);
});

test("an event-loop stall longer than the safety margin suspends the node, which rejoins with a new lease once its handlers stopped", async () => {
  const ns = uniqueNamespace("stall");
  const c = makeCoordinator({ etcd, namespace: ns, node: "n", cleanup });
  const ctx = new RecordingContext("n");
  const handlersStopped = deferred();
  ctx.onSuspend = () => handlersStopped.promise;
  const suspended: string[] = [];
  c.on("suspended", ({ reason }) => suspended.push(reason));
  await c.init(ctx);
  const client = makeClient(etcd, ns, cleanup);
  await client.submitTask("held");
  const claim = await waitFor("a claim", () => c.claim({ id: "held", props: {} }));
  const oldLease = c.stats().leaseId;

  const margin = 1000; // TTL 3 s → margin max(1 s, 0.6 s)
  const end = Date.now() + margin + 500;
  while (Date.now() < end) {
    // a handler hogging the event loop
  }
  await waitFor("suspension", () => ctx.suspends.length === 1);
  expect(suspended[0]).toContain("event loop stalled");
  expect(c.stats().state).toBe("suspended");
  expect(await c.claim({ id: "other", props: {} })).toBeUndefined(); // no claims while suspended
  expect(c.claimDeadline()).toBe(ctx.suspends[0]!.deadline);
  // The consumer has not confirmed its handlers stopped (deadline not passed yet): no rejoin.
  expect(c.stats().leaseId).toBe(oldLease);

  handlersStopped.resolve();
  await waitFor("rejoin", () => ctx.resumes === 1 && c.stats().state === "active");
  expect(c.stats().leaseId).not.toBe(oldLease);
  // The old lease was revoked: its claim is gone, the task is claimable again, with a higher token.
  const raw = rawClient(etcd, cleanup);
  await waitFor(
    "the old claim's owner key to be gone",
    async () => !(await raw.get(new Keys(ns).owner("held")).exists()),
  );
  const again = await waitFor("a new claim", () => c.claim({ id: "held", props: {} }));
  expect(again.token).toBeGreaterThan(claim.token);
  expect(await client.nodes()).toEqual(["n"]);
});

test("rejoin does not wait forever for a consumer that never confirms: it goes ahead after the deadline", async () => {
  const ns = uniqueNamespace("stuck-consumer");
  const c = makeCoordinator({ etcd, namespace: ns, node: "n", cleanup });
  const ctx = new RecordingContext("n");
  ctx.onSuspend = () => new Promise<void>(() => {}); // never settles
  await c.init(ctx);
  const oldLease = c.stats().leaseId!;
  await rawClient(etcd, cleanup).leaseClient.leaseRevoke({ ID: oldLease });
  await waitFor("suspension", () => ctx.suspends.length === 1, { timeout: 5000 });
  const { deadline } = ctx.suspends[0]!;
  await waitFor("rejoin after the deadline", () => ctx.resumes === 1, { timeout: 10_000 });
  expect(Date.now()).toBeGreaterThanOrEqual(deadline);
  expect(c.stats().leaseId).not.toBe(oldLease);
});
