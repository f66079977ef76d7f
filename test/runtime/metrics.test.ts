/**
 * Runtime metrics (src/runtime/metrics/metrics.ts): prom-client on a private registry, fed by a real
 * Consumer on a real MemoryBroker. Values are read back through the Prometheus text format,
 * which is also checked line by line.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { register as globalRegistry } from "prom-client";
import { FairBalancer } from "../../src/balancers/fair.ts";
import { Consumer } from "../../src/consumer/consumer.ts";
import { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import { silentLogger } from "../../src/log.ts";
import { attachConsumerMetrics, createMetrics, type Metrics } from "../../src/runtime/metrics/metrics.ts";
import { FailoverEstimator } from "../../src/runtime/metrics/failover.ts";
import type { ClusterState, CoordinatorContext, Handler, Task } from "../../src/types.ts";
import { parsePrometheusText, sampleValue } from "../support/prometheus.ts";
import { deferred, waitFor } from "../support/wait.ts";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function scrape(
  metrics: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  return sampleValue(parsePrometheusText(await metrics.text()), name, labels);
}

/** Handler that runs until stopped (or until the test tells it to finish with "done"). */
function blockingHandler(finish = new Map<string, () => void>()): Handler & { finish: Map<string, () => void> } {
  return {
    finish,
    async run(task, ctx) {
      const d = deferred<"done" | "release">();
      finish.set(task.id, () => d.resolve("done"));
      ctx.signal.addEventListener("abort", () => d.resolve("release"), { once: true });
      return d.promise;
    },
  };
}

function newMetrics(): Metrics {
  const m = createMetrics({ loopLagSampleEvery: 20 });
  cleanups.push(() => m.close());
  return m;
}

async function startConsumer(broker: MemoryBroker, node: string, handlers: Record<string, Handler>): Promise<Consumer> {
  const consumer = new Consumer({
    coordinator: broker.coordinator(node),
    node,
    handlers,
    log: silentLogger,
    balanceEvery: Infinity,
  });
  await consumer.start();
  cleanups.push(() => consumer.shutdown({ timeout: 2000 }));
  return consumer;
}

describe("createMetrics", () => {
  test("exposes valid Prometheus text with metafora_ metrics, default runtime metrics and event-loop lag", async () => {
    const metrics = newMetrics();
    metrics.observeKeepalive(12);
    metrics.observeLoopLag(3);
    // Let the lag sampler tick at least once.
    await waitFor(
      "the lag sampler to record",
      async () => ((await scrape(metrics, "metafora_event_loop_lag_seconds_count")) ?? 0) >= 2,
    );
    const text = await metrics.text();
    const samples = parsePrometheusText(text);
    // Every metric is declared (labelled counters have no samples until first counted).
    for (const [name, type] of [
      ["metafora_tasks_running", "gauge"],
      ["metafora_claims_won_total", "counter"],
      ["metafora_claims_missed_total", "counter"],
      ["metafora_releases_total", "counter"],
      ["metafora_done_total", "counter"],
      ["metafora_claims_lost_total", "counter"],
      ["metafora_handler_errors_total", "counter"],
      ["metafora_failovers_total", "counter"],
      ["metafora_lease_suspensions_total", "counter"],
      ["metafora_lease_keepalive_seconds", "histogram"],
      ["metafora_event_loop_lag_seconds", "histogram"],
      ["metafora_stateful_tasks", "gauge"],
      ["metafora_frozen", "gauge"],
      ["metafora_rebalance_releases_total", "counter"],
      ["metafora_fair_share_tasks", "gauge"],
      ["metafora_fair_share_distance_ratio", "gauge"],
      ["process_resident_memory_bytes", "gauge"],
      ["nodejs_eventloop_lag_seconds", "gauge"],
    ]) {
      expect(text).toContain(`# TYPE ${name} ${type}\n`);
    }
    expect(sampleValue(samples, "metafora_lease_keepalive_seconds_count")).toBe(1);
    expect(sampleValue(samples, "metafora_lease_keepalive_seconds_sum")).toBeCloseTo(0.012, 6);
    expect(sampleValue(samples, "metafora_lease_keepalive_seconds_bucket", { le: "0.01" })).toBe(0);
    expect(sampleValue(samples, "metafora_lease_keepalive_seconds_bucket", { le: "0.025" })).toBe(1);
    // Every state has a series even with nothing running.
    for (const state of ["runnable", "sleeping", "paused", "fault", "completed", "failed", "killed"]) {
      expect(sampleValue(samples, "metafora_stateful_tasks", { state })).toBe(0);
    }
    expect(metrics.contentType).toContain("text/plain");
  });

  test("prom-client's event-loop lag (nodejs_eventloop_lag_*) is populated on this runtime", async () => {
    const metrics = newMetrics();
    // monitorEventLoopDelay needs a few ticks of its timer before it has data. (On Deno it
    // stays empty; metafora_event_loop_lag_seconds, tested above, covers that case.)
    const max = await waitFor(
      "nodejs_eventloop_lag_max_seconds > 0",
      async () => {
        const v = await scrape(metrics, "nodejs_eventloop_lag_max_seconds");
        return v !== undefined && v > 0 ? v : undefined;
      },
      { interval: 50 },
    );
    expect(max).toBeGreaterThan(0);
  });

  test("uses its own registry: the global prom-client registry stays untouched, and two instances coexist", async () => {
    const before = (await globalRegistry.getMetricsAsJSON()).length;
    const a = newMetrics();
    const b = newMetrics();
    a.claimsMissed.inc();
    expect(await scrape(a, "metafora_claims_missed_total")).toBe(1);
    expect(await scrape(b, "metafora_claims_missed_total")).toBe(0);
    expect((await globalRegistry.getMetricsAsJSON()).length).toBe(before);
  });

  test("a node label is added to every series when asked", async () => {
    const metrics = createMetrics({ node: "node-a", defaultMetrics: false, loopLagSampleEvery: false });
    cleanups.push(() => metrics.close());
    const samples = parsePrometheusText(await metrics.text());
    expect(samples.length).toBeGreaterThan(0);
    expect(samples.every((s) => s.labels.node === "node-a")).toBe(true);
  });

  test("observe* ignores nonsense values instead of corrupting histograms", async () => {
    const metrics = newMetrics();
    metrics.observeKeepalive(NaN);
    metrics.observeKeepalive(-5);
    metrics.observeLoopLag(Infinity);
    expect(await scrape(metrics, "metafora_lease_keepalive_seconds_count")).toBe(0);
  });
});

describe("attachConsumerMetrics with a real Consumer on a MemoryBroker", () => {
  test("running tasks by handler, claims won, done, releases by reason, lost claims, handler errors, frozen", async () => {
    const broker = new MemoryBroker();
    const client = broker.client();
    const a = blockingHandler();
    const failing: Handler = {
      async run() {
        throw new Error("boom");
      },
    };
    const consumer = await startConsumer(broker, "n1", { a, b: blockingHandler(), bad: failing });
    const metrics = newMetrics();
    attachConsumerMetrics(metrics, consumer);

    await client.submitTask("a:1");
    await client.submitTask("a:2");
    await client.submitTask("b:1");
    await waitFor("3 running tasks", () => consumer.tasks().length === 3);
    expect(await scrape(metrics, "metafora_tasks_running", { handler: "a" })).toBe(2);
    expect(await scrape(metrics, "metafora_tasks_running", { handler: "b" })).toBe(1);
    expect(await scrape(metrics, "metafora_claims_won_total", { handler: "a" })).toBe(2);

    // done
    a.finish.get("a:1")!();
    await waitFor("a:1 done", async () => (await scrape(metrics, "metafora_done_total", { handler: "a" })) === 1);
    expect(await scrape(metrics, "metafora_tasks_running", { handler: "a" })).toBe(1);

    // a stop command releases with reason "command"
    consumer.stopTask("a:2", "command");
    await waitFor(
      "a:2 released",
      async () => (await scrape(metrics, "metafora_releases_total", { handler: "a", reason: "command" })) === 1,
    );

    // deleting a running task is a lost claim (reason "deleted")
    await client.deleteTask("b:1");
    await waitFor(
      "b:1 lost",
      async () => (await scrape(metrics, "metafora_claims_lost_total", { handler: "b", reason: "deleted" })) === 1,
    );

    // a throwing handler: counted as an error, released (never done)
    await client.submitTask("bad:1");
    await waitFor(
      "handler error counted",
      async () => (await scrape(metrics, "metafora_handler_errors_total", { handler: "bad" })) === 1,
    );
    await waitFor(
      "released after the error",
      async () => (await scrape(metrics, "metafora_releases_total", { handler: "bad", reason: "error" })) === 1,
    );
    expect(await scrape(metrics, "metafora_done_total", { handler: "bad" })).toBeUndefined();

    expect(await scrape(metrics, "metafora_frozen")).toBe(0);
    consumer.freeze();
    expect(await scrape(metrics, "metafora_frozen")).toBe(1);
  });

  test("rebalances count releases by trigger; the fair share and this node's distance from it are gauges", async () => {
    const broker = new MemoryBroker();
    const client = broker.client();
    const metrics = newMetrics();
    const rebalance = { debounce: 10, jitter: 10, window: 50, steps: 2, driftEvery: Infinity };
    // A short defer limit: n1 claims what frozen n2 (below its share) cannot take.
    const balancer = () => new FairBalancer({ claimDeferLimit: 200 });
    const mk = (node: string) =>
      new Consumer({
        coordinator: broker.coordinator(node),
        node,
        handler: blockingHandler(),
        log: silentLogger,
        balanceEvery: Infinity,
        rebalance,
        balancer: balancer(),
      });
    const n1 = mk("n1");
    await n1.start();
    cleanups.push(() => n1.shutdown({ timeout: 2000 }));
    attachConsumerMetrics(metrics, n1, { cluster: broker.coordinator("n1").cluster, node: "n1" });
    for (let i = 0; i < 20; i++) await client.submitTask(`t${i}`);
    await waitFor("n1 to run all 20", () => n1.tasks().length === 20);
    expect(await scrape(metrics, "metafora_fair_share_tasks")).toBe(20);
    expect(await scrape(metrics, "metafora_fair_share_distance_ratio")).toBe(0);
    const n2 = mk("n2");
    await n2.start();
    cleanups.push(() => n2.shutdown({ timeout: 2000 }));
    await waitFor(
      "n1 to hand 10 to the joiner",
      async () => (await scrape(metrics, "metafora_rebalance_releases_total", { trigger: "join" })) === 10,
    );
    await waitFor("n1 at its share", () => n1.tasks().length === 10 && n2.tasks().length === 10);
    expect(await scrape(metrics, "metafora_fair_share_tasks")).toBe(10);
    expect(await scrape(metrics, "metafora_fair_share_distance_ratio")).toBe(0);
    n2.freeze();
    await client.submitTask("extra1");
    await client.submitTask("extra2");
    await waitFor("n1 to take the extras", () => n1.tasks().length === 12);
    expect(await scrape(metrics, "metafora_fair_share_distance_ratio")).toBeCloseTo(1 / 11, 6);
  });

  test("a claim that finds the task gone is counted as missed", async () => {
    const broker = new MemoryBroker();
    const client = broker.client();
    // The balancer deletes "gone:*" tasks while the consumer is deciding, so the claim that
    // follows finds nothing: exactly what losing a claim race looks like to the consumer.
    const consumer = new Consumer({
      coordinator: broker.coordinator("n1"),
      node: "n1",
      handlers: { gone: blockingHandler(), kept: blockingHandler() },
      log: silentLogger,
      balanceEvery: Infinity,
      balancer: {
        async canClaim(task) {
          if (task.id.startsWith("gone:")) await client.deleteTask(task.id);
          return { claim: true };
        },
        balance: () => [],
      },
    });
    await consumer.start();
    cleanups.push(() => consumer.shutdown({ timeout: 2000 }));
    const metrics = newMetrics();
    attachConsumerMetrics(metrics, consumer);
    await client.submitTask("gone:1");
    await client.submitTask("gone:2");
    await client.submitTask("kept:1");
    await waitFor("two misses", async () => (await scrape(metrics, "metafora_claims_missed_total")) === 2);
    await waitFor(
      "kept:1 claimed",
      async () => (await scrape(metrics, "metafora_claims_won_total", { handler: "kept" })) === 1,
    );
    expect(await scrape(metrics, "metafora_claims_won_total", { handler: "gone" })).toBeUndefined();
  });

  test("stateful task counts come from stateOf at scrape time", async () => {
    const broker = new MemoryBroker();
    const consumer = await startConsumer(broker, "n1", { s: blockingHandler() });
    const metrics = newMetrics();
    const states = new Map<string, string>([
      ["s:1", "runnable"],
      ["s:2", "paused"],
      ["s:3", "paused"],
    ]);
    attachConsumerMetrics(metrics, consumer, {
      stateOf: (id) => {
        if (id === "s:boom") throw new Error("introspection broke");
        const code = states.get(id);
        return code ? { state: { code } } : undefined;
      },
    });
    const client = broker.client();
    for (const id of ["s:1", "s:2", "s:3", "s:4", "s:boom"]) await client.submitTask(id);
    await waitFor("5 running", () => consumer.tasks().length === 5);
    expect(await scrape(metrics, "metafora_stateful_tasks", { state: "paused" })).toBe(2);
    expect(await scrape(metrics, "metafora_stateful_tasks", { state: "runnable" })).toBe(1);
    expect(await scrape(metrics, "metafora_stateful_tasks", { state: "killed" })).toBe(0);
    states.set("s:1", "sleeping");
    expect(await scrape(metrics, "metafora_stateful_tasks", { state: "sleeping" })).toBe(1);
    expect(await scrape(metrics, "metafora_stateful_tasks", { state: "runnable" })).toBe(0);
  });

  test("failovers: tasks of a node that vanished while holding them are counted when claimed here", async () => {
    const broker = new MemoryBroker();
    const client = broker.client();
    // The victim is a bare coordinator: it claims tasks and then disappears without releasing
    // them, like a killed process whose lease expires.
    const victim = broker.coordinator("victim");
    const announced: Task[] = [];
    const ctx: CoordinatorContext = {
      node: "victim",
      log: silentLogger,
      announce: (t) => announced.push(t),
      withdraw() {},
      command() {},
      lost() {},
      suspend: async () => {},
      resume() {},
    };
    await victim.init(ctx);
    for (let i = 0; i < 4; i++) await client.submitTask(`v:${i}`);
    for (const t of announced.splice(0)) expect(await victim.claim(t)).toBeDefined();

    const survivorCoordinator = broker.coordinator("survivor");
    const survivor = new Consumer({
      coordinator: survivorCoordinator,
      node: "survivor",
      handlers: { v: blockingHandler(), w: blockingHandler() },
      log: silentLogger,
      balanceEvery: Infinity,
    });
    await survivor.start();
    cleanups.push(() => survivor.shutdown({ timeout: 2000 }));
    const metrics = newMetrics();
    attachConsumerMetrics(metrics, survivor, {
      cluster: survivorCoordinator.cluster,
      node: "survivor",
      failoverSampleEvery: 20,
    });

    // An ordinary claim while the victim is alive: not a failover (and it samples the view).
    await client.submitTask("w:1");
    await waitFor("w:1 running", () => survivor.tasks().length === 1);
    expect(await scrape(metrics, "metafora_failovers_total")).toBe(0);

    await victim.close(); // vanishes still holding v:0..v:3
    await waitFor("the victim's 4 tasks run on the survivor", () => survivor.tasks().length === 5);
    expect(await scrape(metrics, "metafora_failovers_total")).toBe(4);
    expect(await scrape(metrics, "metafora_claims_won_total", { handler: "v" })).toBe(4);
  });
});

describe("FailoverEstimator", () => {
  function view(initial: Record<string, number>): ClusterState & { set(counts: Record<string, number>): void } {
    let counts = new Map(Object.entries(initial));
    return {
      nodeTaskCounts: () => counts,
      unclaimedCount: () => 0,
      set(next) {
        counts = new Map(Object.entries(next));
      },
    };
  }

  test("a node that drained before vanishing (graceful shutdown seen by a sample) produces no failovers", () => {
    const cluster = view({ me: 1, other: 3 });
    const est = new FailoverEstimator(cluster, { self: "me" });
    cluster.set({ me: 1, other: 0 }); // released everything
    est.sample();
    cluster.set({ me: 4 }); // then deregistered; we claimed its 3
    expect([est.claimed(), est.claimed(), est.claimed()]).toEqual([false, false, false]);
  });

  test("budget equals the vanished node's last count and expires after the window", () => {
    let now = 1_000;
    const cluster = view({ me: 0, dead: 2 });
    const est = new FailoverEstimator(cluster, { self: "me", window: 5_000, now: () => now });
    cluster.set({ me: 0 });
    est.sample();
    expect(est.claimed()).toBe(true);
    now += 6_000; // window over: the second orphan was claimed elsewhere, or long ago
    expect(est.claimed()).toBe(false);
  });

  test("a claim beyond the orphan count is not a failover; a view that throws is tolerated", () => {
    const cluster = view({ me: 0, dead: 1 });
    const est = new FailoverEstimator(cluster, { self: "me" });
    cluster.set({ me: 0 });
    expect(est.claimed()).toBe(true);
    expect(est.claimed()).toBe(false);
    const broken = new FailoverEstimator({
      nodeTaskCounts: () => {
        throw new Error("no view");
      },
      unclaimedCount: () => 0,
    });
    expect(broken.claimed()).toBe(false);
  });
});
