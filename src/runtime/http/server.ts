/**
 * The node's HTTP server (node:http, so it runs on Bun and Deno alike): health and readiness
 * probes, Prometheus metrics, the info endpoint, the JSON API the operator CLI uses, and the
 * operator console at / with its event stream (../console/).
 * Loopback by default; see auth.ts for who may change state.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError } from "../../errors.ts";
import { LiveFeed } from "../console/live.ts";
import { consoleRoutes } from "../console/routes.ts";
import { ClusterOperator } from "../operator/cluster-operator.ts";
import { waitingContextOf } from "../operator/node-waiting.ts";
import type { Operator } from "../operator/types.ts";
import { authorizeChange, checkHost, isLoopbackAddress, type AuthPolicy } from "./auth.ts";
import { DEFAULT_BODY_LIMIT, errorReply, readJsonBody, sendError, sendJson, sendText } from "./json.ts";
import { Router } from "./router.ts";
import { healthRoutes } from "./routes/health.ts";
import { infoRoutes } from "./routes/info.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { nodeRoutes } from "./routes/nodes.ts";
import { taskRoutes } from "./routes/tasks.ts";
import type { HttpServices, Reply } from "./types.ts";

export interface HttpServerOptions {
  /** Overrides services.config.http.listen ("host:port"; port 0 picks a free port). */
  listen?: string;
  /** Largest accepted request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** How long close() waits for in-flight requests before cutting connections (ms, default 2000). */
  closeGrace?: number;
}

export interface RunningHttpServer {
  /** Base URL actually bound, e.g. "http://127.0.0.1:7070". */
  readonly url: string;
  /** Bound host and port. */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** Split "host:port" or "[v6]:port" (the config's http.listen format). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new ConfigError(
      `http.listen ${JSON.stringify(listen)} is not a listen address; expected "host:port" such as "127.0.0.1:7070", or "off"`,
    );
  }
  return { host: m[1] ?? m[2]!, port };
}

export async function startHttpServer(
  services: HttpServices,
  opts: HttpServerOptions = {},
): Promise<RunningHttpServer> {
  const listen = opts.listen ?? services.config.http.listen;
  if (listen === "off")
    throw new ConfigError('http.listen is "off": the HTTP server is disabled, so it cannot be started');
  const { host, port } = parseListen(listen);
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const log = services.log;

  const feed = new LiveFeed(services);
  const router = new Router([
    ...healthRoutes,
    ...metricsRoutes,
    ...infoRoutes,
    ...taskRoutes,
    ...nodeRoutes,
    ...consoleRoutes(feed),
  ]);
  const stateStore = services.stateStore;
  const operator: Operator = new ClusterOperator({
    target: `node "${services.node}"`,
    client: services.client,
    taskCommands: services.taskCommands,
    // Reads go through get() where the store has it, so looking at a task never creates state.
    readState: services.readState ?? (stateStore?.get ? async (id) => stateStore.get?.(id) : undefined),
    loadState: stateStore ? (id) => stateStore.load(id) : undefined,
    liveState: services.stateOf ? (id) => services.stateOf?.(id) : undefined,
    readStates: services.readStates,
    history: services.history,
    historyNote:
      services.history?.scope === "this node (memory)"
        ? `history kept in memory by node "${services.node}": events this node saw since it started`
        : undefined,
    checkpointInfos: services.checkpoints ? () => services.checkpoints!.checkpointInfos() : undefined,
    retryAt: services.retryAt,
    deleteState: services.deleteState ? (id) => services.deleteState!(id) : undefined,
    waiting: waitingContextOf(services),
    classifyError: services.classifyError,
  });

  // Filled in once bound: the policy depends on the address actually bound, not the text.
  let policy: AuthPolicy = { token: services.config.http.token, loopback: false, address: listen };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const method = req.method ?? "GET";
    let path = "?";
    try {
      const url = new URL(req.url ?? "/", "http://node.invalid");
      path = url.pathname;
      checkHost(req, policy);
      const { route, params } = router.match(method, url.pathname);
      if (route.changesState) authorizeChange(req, policy);
      const reply: Reply = await route.handle({
        req,
        params,
        url,
        services,
        operator,
        body: () => readJsonBody(req, bodyLimit),
      });
      if ("stream" in reply) reply.stream(res);
      else if ("json" in reply) sendJson(res, reply.status, reply.json);
      else sendText(res, reply.status, reply.contentType, reply.text, reply.headers);
      log.debug(`http ${method} ${path} ${reply.status} ${(performance.now() - started).toFixed(1)}ms`);
    } catch (err) {
      const { status, message } = errorReply(err);
      // Never log request headers: they may carry the token.
      if (status >= 500) log.warn(`http ${method} ${path} ${status}: ${message}`);
      else log.debug(`http ${method} ${path} ${status}: ${message}`);
      sendError(res, err);
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Last resort: handle() already catches; this guards against a failure while replying.
      log.error(`http: failed to answer ${req.method} ${req.url}: ${String(err)}`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  // A client that sends garbage must not bring the node down.
  server.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off("listening", onListening);
      const hint =
        err.code === "EADDRINUSE"
          ? ' (another process is using it; set http.listen / METAFORA_HTTP to another port, or "off")'
          : "";
      reject(new ConfigError(`cannot listen on ${listen}: ${err.message}${hint}`));
    };
    const onListening = (): void => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, host);
  });
  server.on("error", (err) => log.error(`http server error: ${err.message}`));

  const bound = server.address() as AddressInfo;
  const boundHost = bound.address;
  const hostForUrl = boundHost.includes(":") ? `[${boundHost}]` : boundHost;
  const address = `${hostForUrl}:${bound.port}`;
  policy = { token: services.config.http.token, loopback: isLoopbackAddress(boundHost), address };
  if (!policy.loopback && !policy.token) {
    log.warn(
      `http API on ${address} is not loopback and no token is configured: state-changing requests will be refused (set METAFORA_TOKEN)`,
    );
  }
  log.debug(`http listening on http://${address}${policy.token ? " (token required for changes)" : ""}`);

  let closing: Promise<void> | undefined;
  return {
    url: `http://${address}`,
    address: { host: boundHost, port: bound.port },
    close() {
      closing ??= new Promise<void>((resolve) => {
        // Event streams never finish by themselves: end them first, or close() would wait.
        feed.close();
        const grace = setTimeout(() => server.closeAllConnections(), opts.closeGrace ?? 2000);
        server.close(() => {
          clearTimeout(grace);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
