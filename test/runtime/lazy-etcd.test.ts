/**
 * `metafora run` on the embedded coordinator never loads the etcd client (etcd3, gRPC,
 * protobuf): a Bun preload plugin records every module file loaded from those packages while
 * a real node starts (HTTP server, state machine, a handler importing "metafora" and
 * "metafora/statemachine") and runs a task. The control shows the detector sees a load: a
 * handler importing "metafora/etcd" triggers it.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/wait.ts";
import { startNode, type NodeProcess } from "./support/node.ts";
import { makeWorkspace, type Workspace } from "./support/workspace.ts";

const repo = join(import.meta.dir, "..", "..");
const bun = process.execPath;

/** Records (and refuses) any load of the etcd client's packages. */
const preload = (marker: string) => `
import { appendFileSync } from "node:fs";
Bun.plugin({
  name: "record-etcd-client-loads",
  setup(build) {
    build.onLoad({ filter: /[\\\\/]node_modules[\\\\/](etcd3|@grpc|protobufjs)[\\\\/]/ }, (args) => {
      appendFileSync(${JSON.stringify(marker)}, args.path + "\\n");
      throw new Error("the etcd client was loaded: " + args.path);
    });
  },
});
`;

let ws: Workspace | undefined;
let node: NodeProcess | undefined;
afterEach(async () => {
  await node?.stop();
  ws?.remove();
  node = ws = undefined;
});

function start(handler: string): { marker: string; ran: string } {
  ws = makeWorkspace();
  const marker = join(ws.dir, "etcd-loads.txt");
  const ran = join(ws.dir, "ran.txt");
  writeFileSync(join(ws.dir, "preload.ts"), preload(marker));
  ws.writeHandler("probe.ts", handler.replace("RAN", JSON.stringify(ran)));
  ws.writeConfig(`[[tasks]]\nid = "probe-1"\nhandler = "probe"\n`);
  // A script named "bun" runs Bun with the preload on the runtime's source entry.
  const script = join(ws.dir, "metafora");
  writeFileSync(
    script,
    `#!/bin/sh\nexec ${JSON.stringify(bun)} --preload ./preload.ts ${JSON.stringify(join(repo, "src/runtime/main.ts"))} "$@"\n`,
    { mode: 0o755 },
  );
  node = startNode(script, {
    cwd: ws.dir,
    env: { METAFORA_DATA_DIR: join(ws.dir, "data"), METAFORA_HTTP: "127.0.0.1:0", METAFORA_HANDLERS: ws.handlers },
  });
  return { marker, ran };
}

describe("embedded metafora run and the etcd client", () => {
  test("a node on the embedded coordinator runs a task without loading etcd3, gRPC or protobuf", async () => {
    const { marker, ran } = start(`
import { defineHandler } from "metafora";
import { describeState } from "metafora/statemachine";
import { writeFileSync } from "node:fs";
export default defineHandler({ name: "probe", run() { writeFileSync(RAN, describeState({ code: "runnable" })); return "done"; } });
`);
    await waitFor("the probe task to run (or an etcd client load)", () => existsSync(ran) || existsSync(marker), {
      timeout: 30_000,
    });
    expect(existsSync(marker) ? readFileSync(marker, "utf8") : "").toBe("");
    await node!.waitOutput(/ready/, 10_000);
  }, 60_000);

  test("control: a handler importing metafora/etcd does load the etcd client", async () => {
    const { marker } = start(`
import { EtcdClient } from "metafora/etcd";
export default { name: "probe", run() { return typeof EtcdClient === "function" ? "done" : "release"; } };
`);
    await waitFor(
      "a recorded etcd client load",
      () => existsSync(marker) && readFileSync(marker, "utf8").includes("etcd3"),
      { timeout: 30_000 },
    );
  }, 60_000);
});
