/**
 * Checkpoints on the embedded coordinator survive a restart (they are on disk before
 * ctx.checkpoint resolves), go with their task on done, and state writes there are fenced.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Consumer } from "../../src/consumer/consumer.ts";
import { ClaimLostError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import { loadConfig } from "../../src/runtime/config/load.ts";
import { openEmbeddedBackend } from "../../src/runtime/embedded/backend.ts";
import type { Backend } from "../../src/runtime/backends/backend.ts";
import type { Handler, HandlerContext, HandlerResult } from "../../src/types.ts";
import { waitFor } from "../support/wait.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function open(dir: string): Promise<Backend> {
  const config = await loadConfig({
    cwd: dir,
    env: { METAFORA_DATA_DIR: join(dir, "data"), METAFORA_NODE: "solo" },
    isTTY: false,
  });
  return openEmbeddedBackend(config, silentLogger);
}

function exposing(): { handler: Handler; contexts: HandlerContext[]; finish(r: HandlerResult): void } {
  const contexts: HandlerContext[] = [];
  let finish: (r: HandlerResult) => void = () => {};
  return {
    contexts,
    finish: (r) => finish(r),
    handler: {
      run: (_task, ctx) => {
        contexts.push(ctx);
        return new Promise<HandlerResult>((resolve) => {
          finish = resolve;
          ctx.signal.addEventListener("abort", () => resolve("release"), { once: true });
        });
      },
    },
  };
}

test("a checkpoint survives a restart of the embedded coordinator, and done removes it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "metafora-cp-"));
  dirs.push(dir);
  let backend = await open(dir);
  let h = exposing();
  let consumer = new Consumer({
    coordinator: backend.coordinator,
    node: "solo",
    handler: h.handler,
    balanceEvery: Infinity,
    log: silentLogger,
  });
  await consumer.start();
  await backend.client.submitTask("cp:1");
  const first = await waitFor("the handler", () => h.contexts[0]);
  await first.checkpoint({ left: 7 });
  // Fenced state writes: the current claim may write, an older token may not.
  await backend.stateStore.store("cp:1", { code: "runnable" }, { node: "solo", token: first.token });
  expect(
    await backend.stateStore
      .store("cp:1", { code: "completed" }, { node: "solo", token: first.token - 1 })
      .catch((e: unknown) => e),
  ).toBeInstanceOf(ClaimLostError);
  await consumer.shutdown({ timeout: 2000 });
  await backend.close();

  backend = await open(dir);
  h = exposing();
  consumer = new Consumer({
    coordinator: backend.coordinator,
    node: "solo",
    handler: h.handler,
    balanceEvery: Infinity,
    log: silentLogger,
  });
  await consumer.start();
  const second = await waitFor("the handler after the restart", () => h.contexts[0]);
  expect(second.token).toBeGreaterThan(first.token);
  expect(second.lastCheckpoint).toEqual({ left: 7 });
  h.finish("done");
  await waitFor("the task to be gone", async () => (await backend.client.tasks()).length === 0);
  await consumer.shutdown({ timeout: 2000 });
  await backend.close();

  backend = await open(dir);
  await backend.client.submitTask("cp:1");
  h = exposing();
  consumer = new Consumer({
    coordinator: backend.coordinator,
    node: "solo",
    handler: h.handler,
    balanceEvery: Infinity,
    log: silentLogger,
  });
  await consumer.start();
  const third = await waitFor("the resubmitted task's handler", () => h.contexts[0]);
  expect(third.lastCheckpoint).toBeUndefined();
  await consumer.shutdown({ timeout: 2000 });
  await backend.close();
});
