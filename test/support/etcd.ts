/**
 * A real etcd server for tests: started on free loopback ports with a temporary data dir,
 * stopped (and the dir removed) by stop(). It can be paused (SIGSTOP), killed and restarted on
 * the same data dir, which is what the chaos tests need.
 *
 * The binary is `$ETCD_BIN`, else `etcd` on PATH (Debian's etcd-server, installed by .ci/run).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3, type IOptions } from "etcd3";
import { freePort } from "./ports.ts";
import { sleep } from "./wait.ts";

export interface EtcdServer {
  /** "127.0.0.1:PORT" */
  readonly endpoint: string;
  readonly url: string;
  readonly dataDir: string;
  /** The running etcd's process id (for CPU figures in benchmarks). */
  readonly pid: number | undefined;
  /** A fresh etcd3 client for this server; closed by stop(). */
  client(options?: Partial<IOptions>): Etcd3;
  /** SIGSTOP: the process stays alive but answers nothing. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** SIGKILL and wait for exit; data dir kept. */
  kill(): Promise<void>;
  /** Start again on the same ports and data dir; waits until healthy. */
  restart(): Promise<void>;
  /** Kill, close clients, remove the data dir. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function etcdBinary(): string {
  const fromEnv = process.env.ETCD_BIN;
  if (fromEnv) return fromEnv;
  const found = spawnSync("sh", ["-c", "command -v etcd"], { encoding: "utf8" });
  const path = found.stdout?.trim();
  if (!path) {
    throw new Error("etcd binary not found: set ETCD_BIN or install Debian's etcd-server (bash .ci/run does this)");
  }
  return path;
}

async function waitHealthy(url: string, proc: ChildProcess, log: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`etcd exited with code ${proc.exitCode} during start-up:\n${log()}`);
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) {
        const body = (await res.json()) as { health?: string };
        if (body.health === "true") return;
      }
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`etcd at ${url} not healthy after ${timeoutMs}ms:\n${log()}`);
}

export async function startEtcd(): Promise<EtcdServer> {
  const bin = etcdBinary();
  const dataDir = mkdtempSync(join(tmpdir(), "metafora-etcd-"));
  const clientPort = await freePort();
  let peerPort = await freePort();
  while (peerPort === clientPort) peerPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    "--name",
    "test",
    "--data-dir",
    dataDir,
    "--listen-client-urls",
    url,
    "--advertise-client-urls",
    url,
    "--listen-peer-urls",
    peerUrl,
    "--initial-advertise-peer-urls",
    peerUrl,
    "--initial-cluster",
    `test=${peerUrl}`,
    "--log-level",
    "warn",
  ];
  let proc: ChildProcess;
  let output = "";
  const clients: Etcd3[] = [];
  let stopped = false;

  const launch = async (): Promise<void> => {
    output = "";
    proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    live.add(proc);
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8000);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    // SHOW_ETCD_LOG=1: etcd's own log on our stderr too, for benchmarks and debugging (not an
    // ETCD_* name: etcd reads those as its flags).
    if (process.env.SHOW_ETCD_LOG) proc.stderr?.on("data", (chunk: Buffer) => process.stderr.write(chunk));
    proc.on("exit", () => live.delete(proc));
    await waitHealthy(url, proc, () => output);
  };

  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const p of live) p.kill("SIGKILL");
    });
  }

  await launch();

  const killProc = async (): Promise<void> => {
    const p = proc;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()));
    p.kill("SIGCONT"); // a paused process must be able to die
    p.kill("SIGKILL");
    await exited;
  };

  return {
    endpoint: `127.0.0.1:${clientPort}`,
    url,
    dataDir,
    get pid() {
      return proc.pid;
    },
    client(options = {}) {
      const c = new Etcd3({ hosts: url, dialTimeout: 5000, ...options });
      clients.push(c);
      return c;
    },
    pause() {
      proc.kill("SIGSTOP");
    },
    resume() {
      proc.kill("SIGCONT");
    },
    kill: killProc,
    async restart() {
      await killProc();
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const c of clients) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await killProc();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
