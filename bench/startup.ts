/**
 * Start-up time of the compiled binary.
 *
 *   bun bench/startup.ts [runs=9]
 *
 * Builds, in this run and with the same flags, the `metafora` binary (as `npm run build`) and
 * a Bun-compiled hello world (the baseline: the cost of starting any compiled Bun program).
 * Then, run by run (hello, version, readyz in turn, so drifting machine speed hits all alike):
 *   - hello:   exec → exit of the hello world;
 *   - version: exec → exit of `metafora version`;
 *   - readyz:  exec of `metafora run` on the embedded coordinator (fresh data dir, one handler)
 *              → the first 200 from /readyz (polled every 2 ms).
 * Prints medians and each median over hello's. Goals: version ≤ 4×, readyz ≤ 20×.
 * METAFORA_BENCH_BINARY=path measures that binary instead of building one (e.g. an older
 * build, for a before/after comparison against the same hello world).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../test/support/ports.ts";
import { BUILD_FLAGS, REPO } from "../test/runtime/support/binary.ts";

const RUNS = Math.max(1, Math.min(50, Number(process.argv[2] ?? 9)));
const READY_TIMEOUT_MS = 15_000;

const work = mkdtempSync(join(tmpdir(), "metafora-startup-"));

function compile(entry: string, out: string): string {
  const res = spawnSync(process.execPath, [...BUILD_FLAGS, entry, "--outfile", out], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 180_000,
  });
  if (res.status !== 0) throw new Error(`building ${entry} failed:\n${res.stdout}\n${res.stderr}`);
  return out;
}

/** ms from spawn to exit. */
function timeExit(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ["ignore", "ignore", "inherit"] });
    p.on("error", reject);
    p.on("exit", (code) =>
      code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}`)),
    );
  });
}

/** ms from spawn of `metafora run` to the first 200 of /readyz; the node is then killed. */
async function timeReady(binary: string, handlers: string, n: number): Promise<number> {
  const port = await freePort();
  const dataDir = join(work, `data-${n}`);
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: work,
    METAFORA_DATA_DIR: dataDir,
    METAFORA_HANDLERS: handlers,
    METAFORA_HTTP: `127.0.0.1:${port}`,
    METAFORA_LOG_LEVEL: "warn",
    METAFORA_NODE: "bench",
  };
  const t0 = performance.now();
  const p = spawn(binary, ["run"], { cwd: work, env, stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise<void>((resolve) => p.on("exit", () => resolve()));
  try {
    const url = `http://127.0.0.1:${port}/readyz`;
    while (performance.now() - t0 < READY_TIMEOUT_MS) {
      try {
        const res = await fetch(url);
        await res.arrayBuffer();
        if (res.status === 200) return performance.now() - t0;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error(`no 200 from ${url} within ${READY_TIMEOUT_MS} ms`);
  } finally {
    p.kill("SIGKILL");
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

try {
  writeFileSync(join(work, "hello.ts"), 'console.log("hello");\n');
  const hello = compile(join(work, "hello.ts"), join(work, "hello"));
  const metafora =
    process.env.METAFORA_BENCH_BINARY ?? compile(join(REPO, "src/runtime/main.ts"), join(work, "metafora"));
  const handlers = join(work, "handlers");
  mkdirSync(handlers);
  writeFileSync(
    join(handlers, "idle.ts"),
    'import { defineHandler } from "metafora";\nexport default defineHandler({ name: "idle", run: () => "release" });\n',
  );

  // One warm-up of each (page cache, first-run costs), then counted runs in turn.
  await timeExit(hello, []);
  await timeExit(metafora, ["version"]);
  await timeReady(metafora, handlers, -1);
  const times = { hello: [] as number[], version: [] as number[], readyz: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    times.hello.push(await timeExit(hello, []));
    times.version.push(await timeExit(metafora, ["version"]));
    times.readyz.push(await timeReady(metafora, handlers, i));
  }
  const base = median(times.hello);
  const row = (name: string, xs: number[], goal?: number) => {
    const m = median(xs);
    const ratio = m / base;
    const verdict = goal === undefined ? "" : `  goal ≤ ${goal}×: ${ratio <= goal ? "met" : "not met"}`;
    console.log(
      `${name.padEnd(8)} median ${m.toFixed(1).padStart(7)} ms  (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})  ${ratio.toFixed(1).padStart(5)}× hello${verdict}`,
    );
  };
  const what = process.env.METAFORA_BENCH_BINARY ? `binary ${metafora}` : `flags: ${BUILD_FLAGS.slice(1).join(" ")}`;
  console.log(`start-up, ${RUNS} runs each (bun ${Bun.version}, ${what})`);
  row("hello", times.hello);
  row("version", times.version, 4);
  row("readyz", times.readyz, 20);
} finally {
  rmSync(work, { recursive: true, force: true });
}
