/**
 * A real etcd that requires TLS client certificates and username/password, for the runtime's
 * TLS + auth end-to-end test. Certificates are made with openssl into a temporary folder: a
 * CA, a server certificate for "localhost" (and 127.0.0.1), a client certificate. Auth is
 * enabled with a root user whose password the test knows.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { freePort } from "../../support/ports.ts";
import { waitFor } from "../../support/wait.ts";

export interface TlsEtcd {
  /** "localhost:PORT": a host name, because TLS to an IP address cannot work on Bun/Deno. */
  readonly endpoint: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly username: string;
  readonly password: string;
  stop(): Promise<void>;
}

export function opensslAvailable(): boolean {
  return spawnSync("sh", ["-c", "command -v openssl"], { encoding: "utf8" }).stdout.trim() !== "";
}

function openssl(dir: string, args: string[]): void {
  const res = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (res.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${res.stderr}`);
}

function makeCertificates(dir: string): void {
  const days = ["-days", "2"];
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    ...days,
    "-subj",
    "/CN=metafora-test-ca",
  ]);
  writeFileSync(
    join(dir, "server.ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  openssl(dir, [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=localhost",
  ]);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    ...days,
    "-extfile",
    "server.ext",
  ]);
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  openssl(dir, [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "client.key",
    "-out",
    "client.csr",
    "-subj",
    "/CN=metafora-client",
  ]);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    "client.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "client.pem",
    ...days,
    "-extfile",
    "client.ext",
  ]);
}

export async function startTlsEtcd(): Promise<TlsEtcd> {
  const dir = mkdtempSync(join(tmpdir(), "metafora-etcd-tls-"));
  makeCertificates(dir);
  const clientPort = await freePort();
  let peerPort = await freePort();
  while (peerPort === clientPort) peerPort = await freePort();
  const bin = process.env.ETCD_BIN ?? "etcd";
  let output = "";
  const proc: ChildProcess = spawn(
    bin,
    [
      "--name",
      "tls",
      "--data-dir",
      join(dir, "data"),
      "--listen-client-urls",
      `https://127.0.0.1:${clientPort}`,
      "--advertise-client-urls",
      `https://localhost:${clientPort}`,
      "--listen-peer-urls",
      `http://127.0.0.1:${peerPort}`,
      "--initial-advertise-peer-urls",
      `http://127.0.0.1:${peerPort}`,
      "--initial-cluster",
      `tls=http://127.0.0.1:${peerPort}`,
      "--cert-file",
      join(dir, "server.pem"),
      "--key-file",
      join(dir, "server.key"),
      "--trusted-ca-file",
      join(dir, "ca.pem"),
      "--client-cert-auth",
      "--log-level",
      "warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const keep = (c: Buffer) => (output = (output + c.toString()).slice(-8000));
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  const kill = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await exited;
  };
  process.on("exit", () => proc.kill("SIGKILL"));

  const credentials = {
    rootCertificate: readFileSync(join(dir, "ca.pem")),
    privateKey: readFileSync(join(dir, "client.key")),
    certChain: readFileSync(join(dir, "client.pem")),
  };
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  try {
    const admin = new Etcd3({ hosts: `https://localhost:${clientPort}`, credentials, dialTimeout: 2000 });
    try {
      await waitFor(
        "TLS etcd answering",
        async () => {
          if (proc.exitCode !== null) throw new Error(`etcd exited: ${output}`);
          await admin.get("probe").string();
          return true;
        },
        { timeout: 20_000, interval: 200 },
      );
      const root = await admin.user("root").create(password);
      await root.addRole("root");
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
  } catch (err) {
    await kill();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start a TLS etcd: ${(err as Error).message}\n${output}`);
  }
  return {
    endpoint: `localhost:${clientPort}`,
    ca: join(dir, "ca.pem"),
    cert: join(dir, "client.pem"),
    key: join(dir, "client.key"),
    username: "root",
    password,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
