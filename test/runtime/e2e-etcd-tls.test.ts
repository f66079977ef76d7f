/**
 * End-to-end, etcd with TLS client certificates and username/password, configured the way an
 * operator would: a config file naming the certificate files, the password in the environment.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { freePort } from "../support/ports.ts";
import { metaforaBinary } from "./support/binary.ts";
import { opensslAvailable, startTlsEtcd, type TlsEtcd } from "./support/etcd-tls.ts";
import { runCli, startNode } from "./support/node.ts";
import { HANDLERS, makeWorkspace, type Workspace } from "./support/workspace.ts";

const haveOpenssl = opensslAvailable();
if (!haveOpenssl) console.warn("e2e-etcd-tls: openssl not found, the TLS test is skipped");

let bin: string;
let etcd: TlsEtcd | undefined;
let ws: Workspace;

beforeAll(async () => {
  if (!haveOpenssl) return;
  [bin, etcd] = await Promise.all([metaforaBinary(), startTlsEtcd()]);
  ws = makeWorkspace({ "worker.ts": HANDLERS.worker });
  ws.writeConfig(`
namespace = "/tls-e2e"
lease_ttl = "3s"
[etcd]
endpoints = ["https://${etcd.endpoint}"]
ca = "${etcd.ca}"
cert = "${etcd.cert}"
key = "${etcd.key}"
username = "${etcd.username}"
`);
}, 240_000);

afterAll(async () => {
  await etcd?.stop();
  ws?.remove();
});

describe.skipIf(!haveOpenssl)("etcd with TLS and authentication", () => {
  test("a node joins with the configured certificates and password; the CLI too; the password never shows", async () => {
    const tls = etcd!;
    const port = await freePort();
    const env = { METAFORA_ETCD_PASSWORD: tls.password, METAFORA_NODE: "tls-node", METAFORA_HTTP: `127.0.0.1:${port}` };
    const node = startNode(bin, { cwd: ws.dir, env });
    try {
      await node.waitReady(`http://127.0.0.1:${port}`);
      const cliEnv = { METAFORA_ETCD_PASSWORD: tls.password };
      expect((await runCli(bin, ["submit", "worker:secure"], { cwd: ws.dir, env: cliEnv })).code).toBe(0);
      await node.waitOutput("started worker:secure");
      const config = await runCli(bin, ["config"], { cwd: ws.dir, env: cliEnv });
      expect(config.stdout).toContain('password = "[redacted]"  # env METAFORA_ETCD_PASSWORD');
      node.signal("SIGTERM");
      expect((await node.exited).code).toBe(0);
      expect(node.output()).not.toContain(tls.password);
      expect(config.stdout + config.stderr).not.toContain(tls.password);
    } finally {
      await node.stop();
    }
  }, 60_000);

  test("a wrong password stops start-up with exit 78 and says the credentials were refused", async () => {
    const res = await runCli(bin, ["run"], {
      cwd: ws.dir,
      env: { METAFORA_ETCD_PASSWORD: "not-the-password", METAFORA_NODE: "intruder", METAFORA_HTTP: "off" },
    });
    if (res.code !== 78) console.error(res.stdout, res.stderr);
    expect(res.code).toBe(78);
    expect(res.stdout + res.stderr).toContain("etcd refused this node's credentials");
    expect(res.stdout + res.stderr).not.toContain("not-the-password");
  }, 60_000);
});
