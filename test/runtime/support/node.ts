/**
 * Running the compiled binary as a child process: `metafora run` nodes (with their output,
 * readiness and exit) and one-shot CLI commands. Children get a clean environment: only PATH,
 * HOME and what the test sets, so a developer's METAFORA_* variables never leak in.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { waitFor } from "../../support/wait.ts";

export type Env = Record<string, string>;

export function childEnv(env: Env = {}): Env {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    METAFORA_LOG_FORMAT: "json",
    ...env,
  };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface NodeProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  readonly exited: Promise<Exit>;
  signal(sig: NodeJS.Signals): void;
  /** Wait until /readyz answers 200 at `url`. */
  waitReady(url: string, timeout?: number): Promise<void>;
  waitOutput(what: string | RegExp, timeout?: number): Promise<void>;
  /** SIGKILL if still running; waits for the exit. */
  stop(): Promise<Exit>;
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

export function startNode(binary: string, opts: { cwd: string; env?: Env; args?: string[] }): NodeProcess {
  const proc = spawn(binary, ["run", ...(opts.args ?? [])], {
    cwd: opts.cwd,
    env: childEnv(opts.env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(proc);
  let out = "";
  proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<Exit>((resolve) =>
    proc.on("exit", (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    }),
  );
  let exit: Exit | undefined;
  void exited.then((e) => (exit = e));
  const node: NodeProcess = {
    proc,
    pid: proc.pid!,
    output: () => out,
    exited,
    signal: (sig) => {
      if (exit === undefined) proc.kill(sig);
    },
    async waitReady(url, timeout = 20_000) {
      await waitFor(
        `node ${url} ready`,
        async () => {
          if (exit !== undefined) throw new Error(`node exited (${JSON.stringify(exit)}) before it was ready:\n${out}`);
          const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
          return res?.status === 200;
        },
        { timeout, interval: 50 },
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n--- node output ---\n${out}`);
      });
    },
    async waitOutput(what, timeout = 20_000) {
      await waitFor(
        `output matching ${String(what)}`,
        () => (typeof what === "string" ? out.includes(what) : what.test(out)),
        { timeout, interval: 20 },
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n--- node output ---\n${out}`);
      });
    },
    async stop() {
      if (exit === undefined) proc.kill("SIGKILL");
      return exited;
    },
  };
  return node;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a one-shot command (submit, tasks, config...) and collect its output. */
export function runCli(
  binary: string,
  args: string[],
  opts: { cwd: string; env?: Env; timeout?: number },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(binary, args, { cwd: opts.cwd, env: childEnv(opts.env), stdio: ["ignore", "pipe", "pipe"] });
    live.add(proc);
    let stdout = "";
    let stderr = "";
    proc.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
    proc.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(
        new Error(
          `metafora ${args.join(" ")} did not finish within ${opts.timeout ?? 30_000} ms\n${stdout}\n${stderr}`,
        ),
      );
    }, opts.timeout ?? 30_000);
    proc.on("exit", (code) => {
      clearTimeout(timer);
      live.delete(proc);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Parse the JSON log lines of a node's output (non-JSON lines are skipped). */
export function logLines(output: string): Array<{ level: string; msg: string }> {
  const lines: Array<{ level: string; msg: string }> = [];
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      lines.push(JSON.parse(line) as { level: string; msg: string });
    } catch {
      // not a log line
    }
  }
  return lines;
}
