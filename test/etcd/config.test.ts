/** EtcdConfig validation and connection options (no etcd needed). */
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseEtcdConfig, redactEtcdConfig } from "../../src/coordinators/etcd/config.ts";
import { etcdOptions } from "../../src/coordinators/etcd/connect.ts";
import { leaseTiming } from "../../src/coordinators/etcd/lease.ts";
import { ConfigError } from "../../src/errors.ts";

test("defaults and normalisation", () => {
  const c = parseEtcdConfig({
    endpoints: "127.0.0.1:2379, http://etcd-2:2380,https://etcd-3",
    namespace: " probe/ ",
    node: "n1",
  });
  expect(c.endpoints).toEqual(["http://127.0.0.1:2379", "http://etcd-2:2380", "https://etcd-3:2379"]);
  expect(c.namespace).toBe("/probe");
  expect(c.leaseTtl).toBe(10);
  expect(c.dialTimeout).toBe(5000);
  expect(c.requestTimeout).toBe(5000);
  expect(parseEtcdConfig(c)).toEqual(c); // idempotent
});

test("tls makes bare endpoints https; plain http with tls is refused", () => {
  const c = parseEtcdConfig({ endpoints: ["etcd:2379"], namespace: "ns", tls: { ca: "/ca.pem" } });
  expect(c.endpoints).toEqual(["https://etcd:2379"]);
  expect(() => parseEtcdConfig({ endpoints: ["http://etcd:2379"], namespace: "ns", tls: { ca: "/ca.pem" } })).toThrow(
    /endpoints\[0\].*https/,
  );
});

test.each([
  [{ endpoints: [], namespace: "/x" }, /endpoints/],
  [{ endpoints: ["ftp://x:1"], namespace: "/x" }, /endpoints\[0\].*ftp/],
  [{ endpoints: ["http://u:p@x:1"], namespace: "/x" }, /endpoints\[0\]/],
  [{ endpoints: ["x:1"], namespace: "/" }, /namespace/],
  [{ endpoints: ["x:1"], namespace: 5 }, /namespace/],
  [{ endpoints: ["x:1"], namespace: "/x", node: "a/b" }, /node.*'\/'/],
  [{ endpoints: ["x:1"], namespace: "/x", node: "_metafora" }, /node.*reserved/],
  [{ endpoints: ["x:1"], namespace: "/x", leaseTtl: 0 }, /leaseTtl/],
  [{ endpoints: ["x:1"], namespace: "/x", leaseTtl: 2.5 }, /leaseTtl.*whole/],
  [{ endpoints: ["x:1"], namespace: "/x", requestTimeout: -1 }, /requestTimeout/],
  [{ endpoints: ["x:1"], namespace: "/x", tls: { cert: "/c.pem" } }, /tls\.key/],
  [{ endpoints: ["x:1"], namespace: "/x", username: "u" }, /password/],
  [{ endpoints: ["x:1"], namespace: "/x", bogus: 1 }, /bogus/],
])("refuses %j", (input, message) => {
  let err: unknown;
  try {
    parseEtcdConfig(input, "test.toml [etcd]");
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as Error).message).toMatch(/^test\.toml \[etcd\]: /);
  expect((err as Error).message).toMatch(message);
});

test("the password never appears in errors or in the redacted config", () => {
  const c = parseEtcdConfig({ endpoints: ["x:1"], namespace: "/x", username: "root", password: "s3cret-pw" });
  expect(JSON.stringify(redactEtcdConfig(c))).not.toContain("s3cret-pw");
  expect(redactEtcdConfig(c).username).toBe("root");
  let message = "";
  try {
    parseEtcdConfig({ endpoints: ["x:1"], namespace: "/", username: "root", password: "s3cret-pw" });
  } catch (e) {
    message = (e as Error).message;
  }
  expect(message).toContain("namespace");
  expect(message).not.toContain("s3cret-pw");
});

test("connection options: auth, TLS files, unreadable files named", () => {
  const dir = mkdtempSync(join(tmpdir(), "metafora-tls-"));
  const ca = join(dir, "ca.pem");
  writeFileSync(ca, "-----BEGIN CERTIFICATE-----\n");
  const opts = etcdOptions(
    parseEtcdConfig({ endpoints: ["x:1"], namespace: "/x", tls: { ca }, username: "u", password: "p" }),
  );
  expect(opts.hosts).toEqual(["https://x:1"]);
  expect(opts.credentials?.rootCertificate.toString()).toContain("BEGIN CERTIFICATE");
  expect(opts.auth).toEqual({ username: "u", password: "p" });
  expect(() =>
    etcdOptions(parseEtcdConfig({ endpoints: ["x:1"], namespace: "/x", tls: { ca: join(dir, "missing.pem") } })),
  ).toThrow(/tls\.ca: cannot read .*missing\.pem/);
});

test("lease timing: margin max(1 s, TTL/5), keepalive every (TTL − margin)/4, doubt after half the safe window, trouble a stop budget before its end", () => {
  expect(leaseTiming(10)).toEqual({
    ttlMs: 10_000,
    marginMs: 2000,
    safeMs: 8000,
    keepaliveEveryMs: 2000,
    overdueAfterMs: 4000,
    suspendAfterMs: 6000,
  });
  expect(leaseTiming(30)).toEqual({
    ttlMs: 30_000,
    marginMs: 6000,
    safeMs: 24_000,
    keepaliveEveryMs: 6000,
    overdueAfterMs: 12_000,
    suspendAfterMs: 18_000,
  });
  // Short leases: no room for a doubt phase, trouble at once.
  expect(leaseTiming(3)).toEqual({
    ttlMs: 3000,
    marginMs: 1000,
    safeMs: 2000,
    keepaliveEveryMs: 500,
    overdueAfterMs: 1000,
    suspendAfterMs: 1000,
  });
  const one = leaseTiming(1);
  expect(one.safeMs).toBeGreaterThan(0);
  expect(one.safeMs + one.marginMs).toBe(1000);
});
