/**
 * The runtime also runs from source under Deno (the documented command):
 *
 *   deno run -A --import-map src/runtime/handlers/deno-import-map.json src/runtime/main.ts run
 *
 * The import map sends handler files' `import … from "metafora"` to src/index.ts (Bun uses a
 * runtime plugin instead); npm packages resolve from node_modules through package.json.
 */
import { afterEach, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { freePort } from "../support/ports.ts";
import { REPO } from "./support/binary.ts";
import { startNode } from "./support/node.ts";
import { HANDLERS, makeWorkspace } from "./support/workspace.ts";

const deno = join(REPO, "node_modules", ".bin", "deno");
const importMap = join(REPO, "src/runtime/handlers/deno-import-map.json");
const main = join(REPO, "src/runtime/main.ts");
const cleanups: Array<() => Promise<unknown> | unknown> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

test("deno check: the runtime entry point and the example handlers type-check under Deno", () => {
  const res = spawnSync(
    deno,
    [
      "check",
      "--import-map",
      importMap,
      main,
      ...["hello", "countdown", "batch"].map((h) => join(REPO, "handlers", `${h}.ts`)),
    ],
    {
      cwd: REPO,
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
      timeout: 240_000,
    },
  );
  if (res.status !== 0) console.error(res.stdout, res.stderr);
  expect(res.status).toBe(0);
}, 250_000);

test("deno run: `metafora run` from source runs a submitted task, shuts down cleanly, and restarts with its tasks (SQLite via node:sqlite)", async () => {
  const ws = makeWorkspace({ "worker.ts": HANDLERS.worker });
  cleanups.push(() => ws.remove());
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // startNode runs `<binary> run`; here the "binary" is a tiny shell wrapper around deno.
  const wrapper = join(ws.dir, "metafora-deno");
  await Bun.write(wrapper, `#!/bin/sh\nexec "${deno}" run -A --import-map "${importMap}" "${main}" "$@"\n`);
  spawnSync("chmod", ["+x", wrapper]);
  const node = startNode(wrapper, {
    cwd: ws.dir,
    env: { METAFORA_HTTP: `127.0.0.1:${port}`, METAFORA_NODE: "deno-node", NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  cleanups.push(() => node.stop());
  await node.waitReady(url, 120_000);
  expect(node.output()).toContain('"metafora\\" imports resolve via import-map');

  const res = await fetch(`${url}/api/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id: "worker:on-deno" }),
  });
  expect(res.status).toBe(201);
  await node.waitOutput("started worker:on-deno token", 30_000);

  node.signal("SIGTERM");
  const exit = await node.exited;
  expect(exit.code).toBe(0);
  expect(node.output()).toContain("stopping worker:on-deno");
  expect(node.output()).toContain("shut down cleanly");

  // The embedded store under Deno: a restart has the task and runs it again.
  const again = startNode(wrapper, {
    cwd: ws.dir,
    env: { METAFORA_HTTP: `127.0.0.1:${port}`, METAFORA_NODE: "deno-node", NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  cleanups.push(() => again.stop());
  await again.waitReady(url, 120_000);
  expect(again.output()).toContain("1 task(s)");
  await again.waitOutput("started worker:on-deno token", 30_000);
  const detail = (await (await fetch(`${url}/api/tasks/worker:on-deno`)).json()) as {
    task: { attempts: number };
    history: Array<{ kind: string }>;
  };
  expect(detail.history.map((e) => e.kind)).toEqual(["submitted", "claimed", "released", "claimed"]);
  again.signal("SIGTERM");
  expect((await again.exited).code).toBe(0);
}, 240_000);
