/**
 * A real node for the HTTP/CLI tests: a Consumer on a MemoryBroker with a plain and a stateful
 * handler (memory state store and task commands), metrics, and the HTTP server on
 * 127.0.0.1:0. Everything is the production code; only the wiring (run.ts's job) is here.
 */
import { Consumer } from "../../src/consumer/consumer.ts";
import { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import { MemoryTaskCommands } from "../../src/coordinators/memory/commander.ts";
import { MemoryStateStore } from "../../src/coordinators/memory/state-store.ts";
import { startHttpServer, type RunningHttpServer } from "../../src/runtime/http/server.ts";
import type { HttpServices } from "../../src/runtime/http/types.ts";
import { attachConsumerMetrics, createMetrics, type Metrics } from "../../src/runtime/metrics/metrics.ts";
import { recordConsumerHistory, recordingStateStore } from "../../src/runtime/history/recorder.ts";
import { MemoryTaskHistory } from "../../src/runtime/history/task-history.ts";
import { statefulHandler } from "../../src/statemachine/stateful.ts";
import type { Handler, Logger } from "../../src/types.ts";

export interface OpsNode {
  broker: MemoryBroker;
  consumer: Consumer;
  commands: MemoryTaskCommands;
  store: MemoryStateStore;
  metrics: Metrics;
  services: HttpServices;
  server: RunningHttpServer;
  /** Every log line the node wrote (message and arguments joined). */
  logs: string[];
  ready: boolean;
  close(): Promise<void>;
}

export function capturingLogger(lines: string[]): Logger {
  const put =
    (level: string) =>
    (message: string, ...args: unknown[]) => {
      lines.push(`${level} ${message} ${args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ")}`);
    };
  return { debug: put("debug"), info: put("info"), warn: put("warn"), error: put("error") };
}

/** Runs until stopped; "finish" is not needed by these tests. */
/** Throws at once (history: an error, then a back-off with a next retry). */
export const failingHandler: Handler = {
  run: async () => {
    throw new Error("boom: the downstream service said no");
  },
};

export const blockingHandler: Handler = {
  run: (_task, ctx) =>
    new Promise((resolve) => {
      if (ctx.signal.aborted) resolve("release");
      ctx.signal.addEventListener("abort", () => resolve("release"), { once: true });
    }),
};

export async function startOpsNode(opts: { token?: string; start?: boolean; node?: string } = {}): Promise<OpsNode> {
  const node = opts.node ?? "node-1";
  const logs: string[] = [];
  const log = capturingLogger(logs);
  const broker = new MemoryBroker();
  const commands = new MemoryTaskCommands();
  const store = new MemoryStateStore();
  const history = new MemoryTaskHistory();
  const sm = statefulHandler({
    name: "sm",
    store: recordingStateStore(store, history, node),
    commands,
    // Waits for a command and hands it to the machine (pause, sleep, kill, ...).
    async run(_task, ctx) {
      for await (const message of ctx.commands) return message;
      return "release";
    },
  });
  const consumer = new Consumer({
    coordinator: broker.coordinator(node),
    node,
    handlers: { work: blockingHandler, fails: failingHandler, sm },
    log,
    balanceEvery: Infinity,
  });
  recordConsumerHistory(consumer, history, node);
  const metrics = createMetrics({ loopLagSampleEvery: false });
  attachConsumerMetrics(metrics, consumer, { stateOf: (id) => sm.stateOf(id) });
  const state = { ready: false };
  const services: HttpServices = {
    config: { http: { listen: "127.0.0.1:0", ...(opts.token ? { token: opts.token } : {}) } },
    node,
    started: new Date(),
    consumer,
    client: broker.client(),
    taskCommands: commands,
    stateStore: store,
    stateOf: (id) => sm.stateOf(id),
    history,
    retryAt: (id) => consumer.ignoredUntil(id),
    isReady: () => state.ready,
    log,
    metrics,
  };
  const server = await startHttpServer(services);
  if (opts.start !== false) {
    await consumer.start();
    state.ready = true;
  }
  const result: OpsNode = {
    broker,
    consumer,
    commands,
    store,
    metrics,
    services,
    server,
    logs,
    get ready() {
      return state.ready;
    },
    set ready(v: boolean) {
      state.ready = v;
    },
    async close() {
      await server.close();
      await consumer.shutdown({ timeout: 2000 });
      metrics.close();
    },
  };
  return result;
}
