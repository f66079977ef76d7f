/**
 * The etcd client's connection under a slow etcd (SIGSTOP): with one endpoint, a call that
 * times out must not make etcd3 close the host's channels and retry with the expired deadline
 * (under load that was a storm of reconnects). With several endpoints etcd3's failover to
 * another member is kept (connect.ts); this file checks the single-endpoint case. etcd3 keeps its hosts in `pool.hosts`; the reset is `Host.resetAllServices` (the same
 * internals wire/raw-calls.ts relies on).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { GRPCDeadlineExceededError } from "etcd3";
import { parseEtcdConfig } from "../../src/coordinators/etcd/config.ts";
import { connectEtcd } from "../../src/coordinators/etcd/connect.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  etcd?.resume();
  await etcd?.stop();
});

interface HostInternals {
  resetAllServices(): void;
}

/** Count the resets of every host of a client. */
function countResets(client: object): () => number {
  const hosts = (client as { pool?: { hosts?: HostInternals[] } }).pool?.hosts;
  if (!hosts || hosts.length === 0) throw new Error("etcd3's pool.hosts is not where this test expects it");
  let resets = 0;
  for (const host of hosts) {
    const reset = host.resetAllServices.bind(host);
    host.resetAllServices = () => {
      resets++;
      reset();
    };
  }
  return () => resets;
}

test("one endpoint: a call etcd is too slow to answer keeps the connection and is not retried with its expired deadline", async () => {
  const client = connectEtcd(
    parseEtcdConfig({ endpoints: [etcd.endpoint], namespace: "/connect", requestTimeout: 300 }),
  );
  try {
    await client.put("/connect/k").value("v");
    const resets = countResets(client);
    etcd.pause();
    const t0 = performance.now();
    const err = await client
      .get("/connect/k")
      .string()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    const took = performance.now() - t0;
    etcd.resume();
    expect(err).toBeInstanceOf(GRPCDeadlineExceededError);
    expect(resets()).toBe(0);
    // The error is the one attempt's own: it waited its deadline out (a retry with the same
    // expired deadline would fail at once, after a reconnect).
    expect(took).toBeGreaterThanOrEqual(250);
    // The same connection answers as soon as etcd does.
    expect(await client.get("/connect/k").string()).toBe("v");
    expect(resets()).toBe(0);
  } finally {
    etcd.resume();
    client.close();
  }
}, 20_000);
