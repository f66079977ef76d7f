/**
 * The embedded coordinator's store, SQLite (node:sqlite, WAL, synchronous=FULL, group commit)
 * against the journal + snapshot format it replaced (DurableMap, still in the repository), in
 * the same run:
 *
 * 1. acknowledged submits/s with 8 concurrent submitters, in process: each submit is durable
 *    before it resolves (journal: an fdatasync'ed line per submit; SQLite: one commit per
 *    event-loop turn shared by the submits of that turn);
 * 2. the same over HTTP against the compiled binary (POST /api/tasks, 8 clients, each
 *    acknowledged 201 counted), and against a journal-format binary when one is given
 *    (JOURNAL_BINARY=path: a build of the code before SQLite);
 * 3. exec → /readyz after a restart with 100,000 stored tasks, and the database size per task;
 * 4. the start-up integrity check on that database: integrity_check vs quick_check.
 *
 *   bun bench/embedded-store.ts [tasks=100000] [seconds=5]
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { silentLogger } from "../src/log.ts";
import { DurableMap } from "./support/durable-map.ts";
import { EmbeddedStore } from "../src/runtime/embedded/sqlite-store.ts";
import { freePort } from "../test/support/ports.ts";
import { metaforaBinary } from "../test/runtime/support/binary.ts";
import { startNode } from "../test/runtime/support/node.ts";
import { makeWorkspace } from "../test/runtime/support/workspace.ts";

const TASKS = Math.max(1000, Math.min(1_000_000, Number(process.argv[2] ?? 100_000)));
const SECONDS = Math.max(1, Math.min(60, Number(process.argv[3] ?? 5)));
const SUBMITTERS = 8;
const root = mkdtempSync(join(tmpdir(), "metafora-bench-store-"));
const props = (i: number) => ({ url: `https://example.com/page/${i}`, depth: 2 });

async function inProcess(label: string, submit: (id: string) => Promise<void>): Promise<void> {
  let acked = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: SUBMITTERS }, async (_, w) => {
      for (let i = 0; i < 10_000_000 && performance.now() < deadline; i++) {
        await submit(`bench:${w}-${i}`);
        acked++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  console.log(`  ${label}: ${Math.round(acked / s)} acknowledged submits/s (${acked} in ${s.toFixed(1)} s)`);
}

console.log(`1. in process, ${SUBMITTERS} concurrent submitters, ${SECONDS} s each`);
{
  const journal = DurableMap.open<unknown>(join(root, "journal"), "tasks", silentLogger);
  await inProcess("journal (DurableMap, fdatasync per submit)", async (id) => journal.set(id, props(0)));
  journal.close();
  const store = EmbeddedStore.open(join(root, "sqlite"), silentLogger);
  await inProcess("SQLite (WAL, synchronous=FULL, group commit)", (id) => store.putTask(id, props(0)));
  console.log(
    `  SQLite commits: ${store.writes.commits} for ${store.writes.writes} writes (${(store.writes.writes / Math.max(1, store.writes.commits)).toFixed(1)} per commit)`,
  );
  store.close();
}

const bin = await metaforaBinary();
const ws = makeWorkspace({
  "worker.ts": `export default { async run(task, ctx) { await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true })); return "release"; } };`,
});

async function overHttp(label: string, binary: string, dataDir: string): Promise<void> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const node = startNode(binary, {
    cwd: ws.dir,
    env: {
      METAFORA_HTTP: `127.0.0.1:${port}`,
      METAFORA_NODE: "bench",
      METAFORA_DATA_DIR: dataDir,
      METAFORA_LOG_LEVEL: "warn",
    },
  });
  await node.waitReady(url, 60_000);
  let acked = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: SUBMITTERS }, async (_, w) => {
      for (let i = 0; i < 10_000_000 && performance.now() < deadline; i++) {
        const res = await fetch(`${url}/api/tasks`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ id: `nohandler:${w}-${i}`, props: props(i) }),
        });
        await res.arrayBuffer();
        if (res.status === 201) acked++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  console.log(`  ${label}: ${Math.round(acked / s)} acknowledged submits/s (${acked} in ${s.toFixed(1)} s)`);
  node.signal("SIGTERM");
  await node.exited;
}

console.log(`2. over HTTP, compiled binary, ${SUBMITTERS} concurrent clients, ${SECONDS} s each`);
if (process.env.JOURNAL_BINARY)
  await overHttp("journal-format binary", process.env.JOURNAL_BINARY, join(root, "http-journal"));
else console.log("  (journal-format binary: set JOURNAL_BINARY to a build of the code before SQLite to compare)");
await overHttp("SQLite binary", bin, join(root, "http-sqlite"));

console.log(
  `3. exec → /readyz after a restart with ${TASKS} stored tasks (no handler for them: load time, not claim time)`,
);
async function readyAfterRestart(label: string, binary: string, dataDir: string): Promise<void> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const node = startNode(binary, {
    cwd: ws.dir,
    env: {
      METAFORA_HTTP: `127.0.0.1:${port}`,
      METAFORA_NODE: "bench",
      METAFORA_DATA_DIR: dataDir,
      METAFORA_LOG_LEVEL: "warn",
    },
  });
  for (let i = 0; i < 60_000; i++) {
    if (
      await fetch(`${url}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const ms = performance.now() - t0;
  const listed = ((await (await fetch(`${url}/api/tasks`)).json()) as { tasks: unknown[] }).tasks.length;
  node.signal("SIGTERM");
  await node.exited;
  console.log(`  ${label}: ${ms.toFixed(0)} ms (tasks listed after: ${listed})`);
}
{
  const dir = join(root, "big-sqlite");
  const store = EmbeddedStore.open(dir, silentLogger);
  store.transaction(() => {
    for (let i = 0; i < TASKS; i++) store.putTaskNow(`nohandler:${i}`, JSON.stringify(props(i)));
  });
  store.close();
  const size = statSync(join(dir, "metafora.db")).size;
  await readyAfterRestart("SQLite", bin, dir);
  console.log(
    `  database size: ${(size / 1024 / 1024).toFixed(1)} MiB, ${Math.round(size / TASKS)} bytes per task (props ${JSON.stringify(props(TASKS - 1)).length} bytes of JSON)`,
  );
  if (process.env.JOURNAL_BINARY) {
    const jdir = join(root, "big-journal");
    mkdirSync(jdir, { recursive: true });
    const entries: Record<string, unknown> = {};
    for (let i = 0; i < TASKS; i++) entries[`nohandler:${i}`] = props(i);
    writeFileSync(
      join(jdir, "tasks.snapshot.json"),
      JSON.stringify({ format: "metafora-durable-map", version: 1, entries }),
    );
    const jsize = statSync(join(jdir, "tasks.snapshot.json")).size;
    await readyAfterRestart("journal-format binary", process.env.JOURNAL_BINARY, jdir);
    console.log(
      `  journal snapshot size: ${(jsize / 1024 / 1024).toFixed(1)} MiB, ${Math.round(jsize / TASKS)} bytes per task`,
    );
  }

  console.log(`4. start-up check on that database (${(size / 1024 / 1024).toFixed(1)} MiB)`);
  const db = new DatabaseSync(join(dir, "metafora.db"), { readOnly: true });
  for (const pragma of ["integrity_check", "quick_check"]) {
    const t = performance.now();
    db.prepare(`PRAGMA ${pragma}`).all();
    console.log(`  PRAGMA ${pragma}: ${(performance.now() - t).toFixed(0)} ms`);
  }
  db.close();
  const s2 = EmbeddedStore.open(dir, silentLogger);
  const t = performance.now();
  s2.tasks();
  console.log(`  loading + verifying every row's checksum: ${(performance.now() - t).toFixed(0)} ms`);
  s2.close();
}

ws.remove();
for (const f of readdirSync(root)) rmSync(join(root, f), { recursive: true, force: true });
rmSync(root, { recursive: true, force: true });
