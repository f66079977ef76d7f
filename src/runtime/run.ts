/**
 * `metafora run`: load the handler folder, open the configured coordinator, start the HTTP
 * server and the consumer, submit declarative tasks, then wait for a signal and shut down.
 * Resolves with the process exit code (cli/exit-codes.ts); main.ts exits with it.
 */
import { FairBalancer } from "../balancers/fair.ts";
import { Consumer } from "../consumer/consumer.ts";
import { ConfigError, describeError, NodeNameTakenError, TaskExistsError } from "../errors.ts";
import { isTerminal } from "../statemachine/types.ts";
import type { Logger, ShutdownReport } from "../types.ts";
import type { Backend } from "./backends/backend.ts";
import { openBackend } from "./backends/open.ts";
import { redactConfig } from "./config/redact.ts";
import { Timeline } from "./console/timeline.ts";
import { NodeVitals } from "./console/vitals.ts";
import type { RuntimeConfig } from "./config/schema.ts";
import { formatDuration } from "./config/duration.ts";
import { ExitCode } from "./cli/exit-codes.ts";
import { buildHandlers } from "./handlers/build.ts";
import { startHttpServer, type RunningHttpServer } from "./http/server.ts";
import { recordConsumerHistory, recordingStateStore } from "./history/recorder.ts";
import { describeOpenError } from "./backends/open-errors.ts";
import { loadHandlerModules } from "./handlers/loader.ts";
import { setupLogging, taskHandlers } from "./logging.ts";
import { registerMetaforaModule } from "./handlers/metafora-module.ts";
import { attachConsumerMetrics, createMetrics } from "./metrics/metrics.ts";
import type { RuntimeServices } from "./services.ts";
import { installSignalHandlers } from "./signals.ts";
import { VERSION } from "./cli/version.ts";

export interface RunHooks {
  /** Called once the node is ready (tests and embedding programs). */
  onReady?(services: RuntimeServices, httpUrl: string | undefined): void;
}

export async function runNode(config: RuntimeConfig, hooks: RunHooks = {}): Promise<number> {
  const log = setupLogging({ ...config.log, node: config.node }) as Logger;
  const started = new Date();
  log.info(
    `metafora ${VERSION} starting node "${config.node}" (coordinator ${config.coordinator}, namespace ${config.namespace}, handlers ${config.handlers})`,
  );
  log.debug(`effective configuration: ${JSON.stringify(redactConfig(config))}`);
  installCrashGuards(log);

  // 1. Handlers first: a broken file must stop start-up before anything joins a cluster.
  const resolution = registerMetaforaModule();
  let modules;
  try {
    modules = await loadHandlerModules(config.handlers, undefined, { timeout: config.handlerLoadTimeout });
  } catch (err) {
    log.error(err instanceof ConfigError ? err.message : `loading handlers failed: ${describeError(err)}`);
    return ExitCode.config;
  }
  if (modules.length === 0) log.warn(`no handler files in ${config.handlers}: this node will claim no task`);
  log.info(
    `loaded ${modules.length} handler(s) from ${config.handlers}: ${modules.map((m) => m.name + (m.stateful ? " (stateful)" : "")).join(", ") || "none"} ("metafora" imports resolve via ${resolution})`,
  );

  // 2. The coordinator's backend.
  let backend: Backend;
  try {
    backend = await openBackend(config, log);
  } catch (err) {
    const { message, code } = describeOpenError(config, err);
    log.error(message);
    if (err instanceof Error && err.stack) log.debug(err.stack);
    return code;
  }

  // State changes are recorded in the task history as the state machine stores them.
  const built = buildHandlers(modules, {
    stateStore: recordingStateStore(backend.stateStore, backend.history, config.node),
    taskCommands: backend.taskCommands,
  });
  const consumer = new Consumer({
    coordinator: backend.coordinator,
    node: config.node,
    handlers: built.handlers,
    maxTasks: config.maxTasks === 0 ? Infinity : config.maxTasks,
    balanceEvery: config.balanceEvery,
    balancer: new FairBalancer({
      allowance: config.rebalance.allowance,
      claimDeferLimit: config.rebalance.claimDeferLimit,
    }),
    rebalance: config.rebalance.enabled
      ? {
          debounce: config.rebalance.debounce,
          jitter: config.rebalance.jitter,
          driftEvery: config.rebalance.driftEvery,
          window: config.rebalance.window,
          steps: config.rebalance.steps,
        }
      : false,
    claimConcurrency: backend.claimConcurrency,
    releasePacing: { within: config.quickRelease, initial: config.releaseBackoff, max: config.releaseBackoffMax },
    log,
  });
  // etcd's coordinator measures event-loop lag itself (it needs it for lease safety) and feeds
  // it in through attachMetrics; the metrics' own sampler would count each stall twice.
  const metrics = createMetrics({
    node: config.node,
    ...(backend.kind === "etcd" ? { loopLagSampleEvery: false as const } : {}),
  });
  const detachMetrics = attachConsumerMetrics(metrics, consumer, {
    cluster: backend.coordinator.cluster,
    node: config.node,
    stateOf: (id) => built.stateOf(id),
  });
  // The console's own figures: the last keepalive round trip rides along with the metrics feed.
  const vitals = new NodeVitals(backend.kind === "etcd" ? config.leaseTtl * 1000 : undefined).start();
  const timeline = new Timeline(consumer, { node: config.node, cluster: backend.coordinator.cluster }).start();
  backend.attachMetrics(
    Object.assign(Object.create(metrics) as typeof metrics, {
      observeKeepalive(ms: number) {
        vitals.observeKeepalive(ms);
        metrics.observeKeepalive(ms);
      },
    }),
  );
  logConsumerEvents(consumer, log);
  const detachHistory = recordConsumerHistory(consumer, backend.history, config.node);

  let ready = false;
  const services: RuntimeServices = {
    config,
    node: config.node,
    started,
    consumer,
    client: backend.client,
    taskCommands: backend.taskCommands,
    stateStore: backend.stateStore,
    readState: (id) => backend.readState(id),
    ...(backend.readStates ? { readStates: () => backend.readStates!() } : {}),
    deleteState: (id) => backend.deleteState(id),
    classifyError: (err) => backend.classifyError(err),
    stateOf: (id) => built.stateOf(id),
    history: backend.history,
    checkpoints: backend.checkpoints,
    retryAt: (id) => consumer.ignoredUntil(id),
    handlerNames: built.names,
    isReady: () => ready && consumer.state === "running",
    log,
    metrics,
    console: { timeline, vitals, version: VERSION, coordinator: backend.kind, handlerNames: built.names },
  };

  // 3. Signals: from here on, SIGTERM/SIGINT shut the consumer down (bounded), twice forces.
  let forced = false;
  let shutdownRequested = false;
  const signals = installSignalHandlers(
    {
      stop(signal, count) {
        if (count === 1) {
          shutdownRequested = true;
          log.info(
            `${signal}: shutting down (waiting up to ${formatDuration(config.shutdownTimeout)} for handlers; send it again to force)`,
          );
          void consumer.shutdown({ timeout: config.shutdownTimeout });
        } else {
          forced = true;
          log.warn(`${signal} again: forcing shutdown now`);
          void consumer.shutdown({ timeout: 0 });
        }
      },
      freeze() {
        log.info("SIGTSTP: freezing (no new claims; running tasks keep running; SIGCONT unfreezes)");
        consumer.freeze();
      },
      unfreeze() {
        // SIGCONT also arrives after any SIGSTOP/SIGTSTP (and from tools such as timeout(1)):
        // only a frozen node has something to do.
        if (!consumer.frozen()) return;
        log.info("SIGCONT: unfreezing (claiming again)");
        consumer.unfreeze();
      },
    },
    log,
  );

  const cleanup = async (http: RunningHttpServer | undefined): Promise<void> => {
    signals.dispose();
    detachMetrics();
    detachHistory();
    timeline.close();
    vitals.close();
    metrics.close();
    if (http)
      await http.close().catch((err: unknown) => log.warn(`closing the HTTP server failed: ${describeError(err)}`));
    await backend
      .close()
      .catch((err: unknown) => log.warn(`closing the ${backend.kind} coordinator failed: ${describeError(err)}`));
  };

  // 4. HTTP: up before the consumer, so /healthz answers and /readyz says 503 until ready.
  let http: RunningHttpServer | undefined;
  if (config.http.listen !== "off") {
    try {
      http = await startHttpServer(services);
      log.info(`HTTP on ${http.url} (/healthz, /readyz, /metrics, /info, /api)`);
    } catch (err) {
      log.error(
        `cannot start the HTTP server on ${config.http.listen}: ${err instanceof Error ? err.message : describeError(err)}; set http.listen (METAFORA_HTTP) to a free address, or "off"`,
      );
      await consumer.shutdown({ timeout: 0 });
      await cleanup(undefined);
      return ExitCode.config;
    }
  }

  // 5. Join: register and watch. Failure here is the cluster's (or the node name's).
  try {
    await consumer.start();
  } catch (err) {
    await cleanup(http);
    if (shutdownRequested) return forced ? ExitCode.forced : ExitCode.ok;
    if (err instanceof NodeNameTakenError || err instanceof ConfigError) {
      log.error(err.message);
      return ExitCode.config;
    }
    // grpc-js appends an empty "Resolution note: " to connection errors; it says nothing.
    const summary = (err instanceof Error ? err.message : describeError(err)).replace(/\s*Resolution note:\s*$/, "");
    if (err instanceof Error && err.stack) log.debug(err.stack);
    const kind = backend.classifyJoinError(err);
    if (kind === "credentials") {
      log.error(
        `etcd refused this node's credentials (${summary}); check etcd.username and METAFORA_ETCD_PASSWORD, and the user's permissions`,
      );
      return ExitCode.config;
    }
    log.error(
      `cannot join via ${backend.description}: ${summary}${kind === "unavailable" ? "; check etcd.endpoints (METAFORA_ETCD_ENDPOINTS) and that etcd is up" : ""}`,
    );
    return kind === "unavailable" ? ExitCode.unavailable : ExitCode.failed;
  }

  // 6. Declarative tasks: submitted if absent; a task that exists already is left as it is.
  if (!shutdownRequested) await submitDeclarativeTasks(config, backend, log);

  // A node whose lease went into doubt during start-up is suspended right now: it is still
  // registered and turns ready (isReady checks the state) as soon as it has rejoined.
  if (!shutdownRequested && (consumer.state === "running" || consumer.state === "suspended")) {
    ready = true;
    log.info(
      `ready: node "${config.node}" via ${backend.description}, ${built.names.length} handler(s), max_tasks ${config.maxTasks || "unlimited"}`,
    );
    hooks.onReady?.(services, http?.url);
  }

  const report: ShutdownReport = await consumer.run();
  ready = false;
  await cleanup(http);
  return exitCodeFor(report, forced, log, config);
}

function exitCodeFor(report: ShutdownReport, forced: boolean, log: Logger, config: RuntimeConfig): number {
  if (forced) {
    if (report.stuck.length > 0) log.warn(`forced shutdown; handlers still running: ${report.stuck.join(", ")}`);
    return ExitCode.forced;
  }
  if (!report.clean) {
    log.error(
      `shutdown timed out after ${formatDuration(config.shutdownTimeout)}; handlers that did not stop: ${report.stuck.join(", ")}`,
    );
    return ExitCode.shutdownTimedOut;
  }
  if (report.unreleased?.length) {
    // Every handler stopped, but the coordinator did not take the tasks back: not "cleanly".
    log.warn(
      `shut down, but ${report.unreleased.length} task(s) could not be released: ${report.unreleased.join(", ")}; other nodes can claim them once this node's lease expires`,
    );
    return ExitCode.ok;
  }
  log.info("shut down cleanly");
  return ExitCode.ok;
}

async function submitDeclarativeTasks(config: RuntimeConfig, backend: Backend, log: Logger): Promise<void> {
  let added = 0;
  for (const t of config.tasks) {
    const props = t.handler === undefined ? { ...(t.props ?? {}) } : { ...(t.props ?? {}), handler: t.handler };
    try {
      // A finished stateful task would be resubmitted on every start and end at once: say so.
      const stored = await backend.readState(t.id).catch(() => undefined);
      if (stored && isTerminal(stored.code)) {
        log.info(
          `declarative task "${t.id}" already ran to the end (state ${stored.code}); not resubmitted (\`metafora state reset ${t.id}\` runs it again)`,
        );
        continue;
      }
      await backend.client.submitTask(t.id, props);
      added++;
    } catch (err) {
      if (err instanceof TaskExistsError) continue;
      log.error(`declarative task "${t.id}" could not be submitted: ${describeError(err)}`);
    }
  }
  if (config.tasks.length > 0)
    log.info(`declarative tasks: ${added} submitted, ${config.tasks.length - added} already present or failed`);
}

function logConsumerEvents(consumer: Consumer, log: Logger): void {
  // JSON log lines about a task name its handler (logging.ts).
  consumer.on("claimed", ({ task, handler }) => taskHandlers.set(task.id, handler));
  for (const event of ["released", "done", "lost"] as const)
    consumer.on(event, ({ taskId }) => taskHandlers.delete(taskId));
  consumer.on("claimed", ({ task, token, handler }) =>
    log.debug(`claimed ${task.id} (handler ${handler}, token ${token})`),
  );
  consumer.on("done", ({ taskId }) => log.info(`task ${taskId} done`));
  consumer.on("lost", ({ taskId, reason }) => log.warn(`lost task ${taskId} (${reason})`));
  consumer.on("suspended", ({ deadline }) =>
    log.warn(`claims in doubt: handlers stopping by ${new Date(deadline).toISOString()}`),
  );
  consumer.on("resumed", () => log.info("claims safe again: claiming"));
}

let guardsInstalled = false;
/**
 * A handler's stray async error (a throwing timer callback, an unawaited rejected promise)
 * must not take the whole node and every other task down with it: log it and carry on.
 */
function installCrashGuards(log: Logger): void {
  if (guardsInstalled) return;
  guardsInstalled = true;
  process.on("uncaughtException", (err) =>
    log.error(`uncaught exception (the node keeps running): ${describeError(err)}`),
  );
  process.on("unhandledRejection", (reason) =>
    log.error(`unhandled promise rejection (the node keeps running): ${describeError(reason)}`),
  );
}
