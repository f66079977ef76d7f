/**
 * Takes the README's screenshot of the console (docs/console.png): the compiled binary on the
 * embedded coordinator with the example handlers, a few tasks in different states, driven and
 * photographed by the same headless Chromium the tests use.
 *   bun test/runtime/support/console-screenshot.ts [out.png]
 */
import { cpSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../support/ports.ts";
import { sleep } from "../../support/wait.ts";
import { REPO, metaforaBinary } from "./binary.ts";
import { launchBrowser } from "./browser.ts";
import { runCli, startNode } from "./node.ts";
import { makeWorkspace } from "./workspace.ts";

const out = process.argv[2] ?? join(REPO, "docs/console.png");
const bin = await metaforaBinary();
const ws = makeWorkspace();
cpSync(join(REPO, "handlers"), ws.handlers, { recursive: true });
const port = await freePort();
const env = { METAFORA_HTTP: `127.0.0.1:${port}`, METAFORA_NODE: "node-1", METAFORA_LOG_LEVEL: "warn" };
const url = `http://127.0.0.1:${port}`;
const node = startNode(bin, { cwd: ws.dir, env });
const browser = await launchBrowser();
try {
  await node.waitReady(url);
  const cli = (...args: string[]) => runCli(bin, args, { cwd: ws.dir, env });
  for (const id of ["hello:world", "hello:moon", "hello:eu-west", "hello:us-east"]) await cli("submit", id);
  await cli("submit", "batch:nightly", "--props", '{"steps":500}');
  await cli("submit", "batch:weekly", "--props", '{"steps":500}');
  await cli("submit", "batch:reindex", "--props", '{"steps":500}');
  await cli("submit", "countdown:launch", "--props", '{"from":900}');
  const page = await browser.newPage();
  await page.goto(`${url}/`);
  await sleep(3000);
  await cli("pause", "batch:nightly");
  await cli("sleep", "batch:weekly", "2h");
  await cli("command", "node-1", "stop_task", "--task", "hello:moon").catch(() => undefined);
  for (let i = 0; i < 6; i++) {
    await cli("submit", `countdown:wave-${i}`, "--props", `{"from":${2 + i}}`);
    await sleep(1500);
  }
  await page.waitForSelector('tr[data-task="batch:nightly"][data-state="paused"]', { timeout: 20_000 });
  await page.click('tr[data-task="batch:nightly"] button.link');
  await sleep(2500);
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}; requests off 127.0.0.1: ${browser.offSiteRequests().length}`);
} finally {
  await browser.close();
  node.signal("SIGTERM");
  await node.exited;
  ws.remove();
}
