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

test("a big burst of watch events reaches the listener in slices, in order, with the event loop free in between", async () => {
  const conn = etcd.client();
  const received: number[] = [];
  const revisions: number[] = [];
  let slices = 0;
  let biggest = 0;
  let ticks = 0;
  let ticksSeenBetweenSlices = 0;
  let lastTicks = 0;
  const mirror = new PrefixMirror({
    etcd: conn,
    prefix: "/burst/",
    log: silentLogger,
    requestTimeout: 5000,
    eventsPerTurn: 50,
    listener: {
      snapshot: () => {},
      events: (evs) => {
        slices++;
        biggest = Math.max(biggest, evs.length);
        if (ticks > lastTicks) ticksSeenBetweenSlices++;
        lastTicks = ticks;
        for (const ev of evs) {
          received.push(Number(ev.kv.key.slice("/burst/k".length)));
          revisions.push(ev.kv.modRevision);
        }
      },
    },
  });
  const ticker = setInterval(() => ticks++, 0);
  try {
    await mirror.start();
    // 1,280 keys in 20 transactions of 64, all sent at once: responses of many events each.
    const TOTAL = 1280;
    await Promise.all(
      Array.from({ length: TOTAL / 64 }, (_, t) =>
        conn.kv.txn({
          compare: [],
          success: Array.from({ length: 64 }, (_, j) => ({
            request_put: { key: Buffer.from(`/burst/k${t * 64 + j}`), value: Buffer.from("v") },
          })),
        }),
      ),
    );
    await waitFor("every event", () => received.length === TOTAL, { timeout: 10_000 });
    expect(biggest).toBeLessThanOrEqual(50);
    expect(slices).toBeGreaterThanOrEqual(TOTAL / 50);
    // Each key exactly once, in revision order across every slice.
    expect(new Set(received).size).toBe(TOTAL);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(ticksSeenBetweenSlices).toBeGreaterThan(0);
  } finally {
    clearInterval(ticker);
    mirror.close();
  }
});

test("without etcd3's connection pool (another etcd3 version) the mirror lists and watches through etcd3's API", async () => {
  const conn = etcd.client();
  await conn.put("/fallback/a").value("1");
  // The same client with its pool hidden: the raw calls must take the public-API path.
  const hidden = Object.create(conn, { pool: { value: undefined } }) as typeof conn;
  const listed: MirrorKv[] = [];
  const events: string[] = [];
  const mirror = new PrefixMirror({
    etcd: hidden,
    prefix: "/fallback/",
    log: silentLogger,
    requestTimeout: 5000,
    listener: {
      snapshot: (kvs) => listed.push(...kvs),
      events: (evs) => {
        for (const ev of evs) events.push(`${ev.type} ${ev.kv.key}=${ev.kv.value}`);
      },
    },
  });
  try {
    await mirror.start();
    expect(listed.map((kv) => [kv.key, kv.value])).toEqual([["/fallback/a", "1"]]);
    expect(listed[0]!.createRevision).toBeGreaterThan(0);
    await conn.put("/fallback/b").value("2");
    await conn.delete().key("/fallback/a");
    await waitFor("both changes through the watch", () => events.length === 2, { timeout: 10_000 });
    expect(events).toEqual(["put /fallback/b=2", "delete /fallback/a="]);
  } finally {
    mirror.close();
  }
});

test("a listing page that does not come in time is asked for again at the same revision, without starting the listing over", async () => {
  const conn = etcd.client();
  for (let i = 0; i < 250; i++) await conn.put(`/retry/k${String(i).padStart(3, "0")}`).value("v");
  let listings = 0;
  const seen: string[] = [];
  let resumeTimer: ReturnType<typeof setTimeout> | undefined;
  const mirror = new PrefixMirror({
    etcd: conn,
    prefix: "/retry/",
    log: silentLogger,
    requestTimeout: 400,
    pageSize: 100,
    listener: {
      snapshot: () => {
        throw new Error("the streamed form must be used");
      },
      beginSnapshot: () => {
        listings++;
        return {
          page: (kvs: readonly MirrorKv[]) => {
            for (const kv of kvs) seen.push(kv.key);
            // etcd goes silent after the first page for longer than a page's deadline.
            if (seen.length === 100) {
              etcd.pause();
              resumeTimer = setTimeout(() => etcd.resume(), 700);
            }
          },
          commit: () => {},
        };
      },
      events: () => {},
    },
  });
  try {
    await mirror.start(); // the initial listing does not fail
    expect(listings).toBe(1);
    expect(seen.length).toBe(250);
    expect(new Set(seen).size).toBe(250);
  } finally {
    clearTimeout(resumeTimer);
    etcd.resume();
    mirror.close();
    conn.close();
  }
});
