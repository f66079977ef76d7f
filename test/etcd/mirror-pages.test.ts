/** The initial listing is streamed: pages reach the listener as they arrive, at one revision. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { PrefixMirror, type MirrorKv } from "../../src/coordinators/etcd/watch.ts";
import { silentLogger } from "../../src/log.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { waitFor } from "../support/wait.ts";

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

test("a listing of many keys arrives page by page, consistent at the first page's revision, then the watch", async () => {
  const conn = etcd.client();
  for (let i = 0; i < 250; i++) await conn.put(`/pages/k${String(i).padStart(3, "0")}`).value("v");
  const pages: number[] = [];
  const seen: string[] = [];
  let committed: number | undefined;
  const events: string[] = [];
  let wrote = false;
  const mirror = new PrefixMirror({
    etcd: conn,
    prefix: "/pages/",
    log: silentLogger,
    requestTimeout: 5000,
    pageSize: 100,
    listener: {
      snapshot: () => {
        throw new Error("the streamed form must be used");
      },
      beginSnapshot: () => ({
        page: (kvs: readonly MirrorKv[]) => {
          pages.push(kvs.length);
          for (const kv of kvs) seen.push(kv.key);
          // A write in the middle of the listing is not in it (every page is at one revision)...
          if (!wrote) {
            wrote = true;
            void conn.put("/pages/z-late").value("v").exec();
          }
        },
        commit: (revision: number) => {
          committed = revision;
        },
      }),
      events: (evs) => {
        for (const ev of evs) events.push(ev.kv.key);
      },
    },
  });
  try {
    await mirror.start();
    expect(pages).toEqual([100, 100, 50]);
    expect(seen.length).toBe(250);
    expect(seen).not.toContain("/pages/z-late");
    expect(committed).toBeGreaterThan(0);
    // ...and arrives through the watch instead.
    await waitFor("the late write through the watch", () => events.includes("/pages/z-late"), { timeout: 10_000 });
  } finally {
    mirror.close();
  }
});
