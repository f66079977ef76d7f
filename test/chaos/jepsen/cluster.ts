/**
 * The system under test: one real etcd and N nodes of the compiled binary, each a separate
 * process with its own name, HTTP port and the chaos handler, plus what the harness needs to
 * hurt them (signals, restarts, the nodes' leases) and to look at them (/info, owner keys).
 * Every spawn and exit goes to the harness history; an exit the harness did not cause is what
 * the checker calls an unexplained exit.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Etcd3, Watcher } from "etcd3";
import { EtcdClient } from "../../../src/coordinators/etcd/client.ts";
import { startEtcd, type EtcdServer } from "../../support/etcd.ts";
import { freePort } from "../../support/ports.ts";
import { waitFor } from "../../support/wait.ts";
import { childEnv } from "../../runtime/support/node.ts";
import { HistoryWriter, monoNow } from "./history.ts";

export const NAMESPACE = "/chaos";
export const REGISTER_PREFIX = "/chaos-register/";

export interface ClusterOptions {
  binary: string;
  nodes: number;
  ttlSeconds: number;
  stepMs: number;
}

/** What a live node says it runs (GET /info). */
export interface NodeView {
  node: string;
  tasks: Array<{ id: string; token: number; stopped: boolean }>;
}

/** Who etcd says owns each task: the owner key's node and create revision (= token). */
export type OwnerMap = Map<string, { node: string; token: number }>;

interface Slot {
  readonly name: string;
  proc?: ChildProcess;
  url?: string;
  /** The harness signalled the current process: its exit is explained. */
  expectExit: boolean;
  exited?: Promise<void>;
  output: string;
}

const decoder = new TextDecoder();

// Whatever ends the harness (a failed test, Ctrl-C), no node process outlives it.
const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) {
    p.kill("SIGCONT");
    p.kill("SIGKILL");
  }
});

export class Cluster {
  readonly dir: string;
  readonly historyDir: string;
  readonly harness: HistoryWriter;
  readonly names: string[];
  private readonly slots = new Map<string, Slot>();
  private etcdServer!: EtcdServer;
  private raw!: Etcd3;
  private client!: EtcdClient;
  private watcher?: Watcher;

  constructor(readonly options: ClusterOptions) {
    this.dir = mkdtempSync(join(tmpdir(), "metafora-chaos-"));
    this.historyDir = join(this.dir, "history");
    mkdirSync(this.historyDir);
    mkdirSync(join(this.dir, "handlers"));
    copyFileSync(join(import.meta.dir, "handler.ts"), join(this.dir, "handlers", "chaos.ts"));
    this.harness = new HistoryWriter(join(this.historyDir, "harness.jsonl"));
    this.names = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    for (const name of this.names) this.slots.set(name, { name, expectExit: false, output: "" });
  }

  get etcd(): EtcdServer {
    return this.etcdServer;
  }

  get ttlMs(): number {
    return this.options.ttlSeconds * 1000;
  }

  async startEtcd(): Promise<void> {
    this.etcdServer = await startEtcd();
    this.raw = this.etcdServer.client();
    this.client = new EtcdClient(this.raw, NAMESPACE);
    await this.watchRegisters();
  }

  /**
   * etcd's own record of the registers: every accepted write, seen by a watch from the first
   * revision. The etcd3 client re-establishes the watch after etcd restarts from the last
   * revision it saw, so no write is skipped while etcd keeps its history.
   */
  private async watchRegisters(): Promise<void> {
    const w = await this.raw.watch().prefix(REGISTER_PREFIX).create();
    w.on("put", (kv) => {
      const task = decoder.decode(kv.key).slice(REGISTER_PREFIX.length);
      try {
        const v = JSON.parse(decoder.decode(kv.value)) as { token: number; step: number; node: string };
        this.harness.write({
          k: "register",
          task,
          token: v.token,
          step: v.step,
          node: v.node,
          rev: Number(kv.mod_revision),
          mono: monoNow(),
        });
      } catch {
        // not a register value; the checker only trusts well-formed ones
      }
    });
    w.on("error", () => undefined); // the client reconnects by itself
    this.watcher = w;
  }

  async submit(ids: string[]): Promise<void> {
    for (const id of ids) await this.client.submitTask(id);
  }

  isAlive(name: string): boolean {
    const p = this.slot(name).proc;
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  liveNodes(): string[] {
    return this.names.filter((n) => this.isAlive(n));
  }

  /** Dead nodes whose exit the harness did not cause (to be restarted). */
  unexpectedlyDead(): string[] {
    return this.names.filter((n) => !this.isAlive(n) && !this.slot(n).expectExit);
  }

  private slot(name: string): Slot {
    const s = this.slots.get(name);
    if (!s) throw new Error(`no node named ${name}`);
    return s;
  }

  /** Spawn the node and wait until it is ready (registered and watching). */
  async spawnNode(name: string): Promise<void> {
    const slot = this.slot(name);
    if (this.isAlive(name)) throw new Error(`node ${name} is already running`);
    const port = await freePort();
    const env = childEnv({
      METAFORA_ETCD_ENDPOINTS: this.etcdServer.endpoint,
      METAFORA_NAMESPACE: NAMESPACE,
      METAFORA_NODE: name,
      METAFORA_LEASE_TTL: `${this.options.ttlSeconds}s`,
      METAFORA_HTTP: `127.0.0.1:${port}`,
      METAFORA_HANDLERS: join(this.dir, "handlers"),
      METAFORA_SHUTDOWN_TIMEOUT: `${this.options.ttlSeconds * 2}s`,
      // Rebalance often, so a restarted node gets work back and graceful hand-offs happen too.
      METAFORA_BALANCE_EVERY: `${this.options.ttlSeconds * 3}s`,
      CHAOS_HISTORY: join(this.historyDir, `${name}.jsonl`),
      CHAOS_ETCD_URL: this.etcdServer.url,
      CHAOS_REGISTER_PREFIX: REGISTER_PREFIX,
      CHAOS_STEP_MS: String(this.options.stepMs),
    });
    const proc = spawn(this.options.binary, ["run"], { cwd: this.dir, env, stdio: ["ignore", "pipe", "pipe"] });
    slot.proc = proc;
    running.add(proc);
    slot.url = `http://127.0.0.1:${port}`;
    slot.expectExit = false;
    slot.output = "";
    const keep = (c: Buffer): void => {
      slot.output = (slot.output + c.toString()).slice(-6000);
    };
    proc.stdout!.on("data", keep);
    proc.stderr!.on("data", keep);
    slot.exited = new Promise<void>((resolve) =>
      proc.once("exit", (code, signal) => {
        running.delete(proc);
        this.harness.write({
          k: "proc",
          node: name,
          pid: proc.pid ?? -1,
          event: "exit",
          expected: slot.expectExit,
          code,
          signal,
          ...(slot.expectExit ? {} : { tail: slot.output.split("\n").slice(-12).join("\n") }),
          mono: monoNow(),
          wall: Date.now(),
        });
        resolve();
      }),
    );
    this.harness.write({
      k: "proc",
      node: name,
      pid: proc.pid ?? -1,
      event: "spawn",
      mono: monoNow(),
      wall: Date.now(),
    });
    const url = slot.url;
    await waitFor(
      `node ${name} ready`,
      async () => {
        if (!this.isAlive(name)) throw new Error(`node ${name} exited before it was ready:\n${slot.output}`);
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
        return res?.status === 200;
      },
      // Start-up of a ~100 MB binary on a loaded 2-core machine: generous, in TTLs.
      { timeout: 10 * this.ttlMs + 20_000, interval: 100 },
    ).catch((err: Error) => {
      const tail = slot.output.trim().split("\n").slice(-3).join(" | ");
      throw new Error(`${err.message.split("\n")[0]}; its last output: ${tail || "(none)"}`);
    });
  }

  /** Send a signal the harness takes responsibility for (the exit that may follow is explained). */
  signal(name: string, sig: NodeJS.Signals, opts: { expectExit: boolean }): void {
    const slot = this.slot(name);
    if (!this.isAlive(name)) return;
    if (opts.expectExit) slot.expectExit = true;
    slot.proc!.kill(sig);
  }

  /** Wait for the node's process to exit; false if it is still running after `timeoutMs`. */
  async waitExit(name: string, timeoutMs: number): Promise<boolean> {
    const slot = this.slot(name);
    if (!slot.exited) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = await Promise.race([
      slot.exited.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return done;
  }

  /** Wait until the node's registration marker is gone (its lease expired or was revoked). */
  async waitNameFree(name: string, timeoutMs: number): Promise<void> {
    await waitFor(`node ${name}'s registration to expire`, async () => !(await this.registration(name)), {
      timeout: timeoutMs,
      interval: 200,
    });
  }

  /** The node's registration key and its lease id, if registered. */
  async registration(name: string): Promise<{ lease: string } | undefined> {
    const res = await this.raw.get(`${NAMESPACE}/nodes/${name}/_metafora`).exec();
    const kv = res.kvs[0];
    return kv ? { lease: String(kv.lease) } : undefined;
  }

  async revokeLease(lease: string): Promise<void> {
    await this.raw.leaseClient.leaseRevoke({ ID: lease });
  }

  /** Compact etcd's history up to the current revision; returns it. */
  async compact(): Promise<number> {
    const head = await this.raw.get(`${NAMESPACE}/_metafora`).exec();
    const revision = head.header.revision;
    await this.raw.kv.compact({ revision, physical: true });
    return Number(revision);
  }

  async deleteKey(key: string): Promise<boolean> {
    const res = await this.raw.delete().key(key).exec();
    return Number(res.deleted) > 0;
  }

  /** Owner keys, as etcd holds them. */
  async owners(): Promise<OwnerMap> {
    const res = await this.raw.getAll().prefix(`${NAMESPACE}/tasks/`).exec();
    const out: OwnerMap = new Map();
    for (const kv of res.kvs) {
      const key = decoder.decode(kv.key);
      const m = /^\/chaos\/tasks\/([^/]+)\/owner$/.exec(key);
      if (!m) continue;
      try {
        const v = JSON.parse(decoder.decode(kv.value)) as { node?: string };
        out.set(m[1]!, { node: String(v.node), token: Number(kv.create_revision) });
      } catch {
        out.set(m[1]!, { node: "?", token: Number(kv.create_revision) });
      }
    }
    return out;
  }

  /** What each live node reports running; a node that does not answer reports nothing. */
  async views(): Promise<NodeView[]> {
    return Promise.all(
      this.liveNodes().map(async (node): Promise<NodeView> => {
        const url = this.slot(node).url!;
        try {
          const res = await fetch(`${url}/info`, { signal: AbortSignal.timeout(2000) });
          const info = (await res.json()) as { tasks: Array<{ id: string; token: number; stopped?: string }> };
          return {
            node,
            tasks: info.tasks.map((t) => ({ id: t.id, token: t.token, stopped: t.stopped !== undefined })),
          };
        } catch {
          return { node, tasks: [] };
        }
      }),
    );
  }

  /** Tasks each node runs right now, by etcd's owner keys (cheap, for picking fault targets). */
  async tasksOwnedBy(name: string): Promise<string[]> {
    return [...(await this.owners())].filter(([, o]) => o.node === name).map(([id]) => id);
  }

  /** SIGTERM every node (explained exits), SIGKILL what is left after the shutdown timeout, stop etcd. */
  async stop(opts: { keepFiles: boolean }): Promise<void> {
    for (const n of this.liveNodes()) this.signal(n, "SIGCONT", { expectExit: false });
    for (const n of this.liveNodes()) this.signal(n, "SIGTERM", { expectExit: true });
    const grace = this.options.ttlSeconds * 2000 + 10_000;
    await Promise.all(this.names.map((n) => this.waitExit(n, grace)));
    for (const n of this.liveNodes()) this.signal(n, "SIGKILL", { expectExit: true });
    await Promise.all(this.names.map((n) => this.waitExit(n, 10_000)));
    try {
      await this.watcher?.cancel();
    } catch {
      // etcd may be down
    }
    await this.etcdServer?.stop();
    if (!opts.keepFiles) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Last lines a node printed (for evidence in reports). */
  output(name: string): string {
    return this.slot(name).output;
  }
}
