/**
 * An etcd3 client built from an EtcdConfig: endpoints, TLS files, username/password, and a
 * deadline on every unary request so that nothing waits forever on a silent etcd.
 */
import type { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { ConsecutiveBreaker, circuitBreaker, handleWhen, type IPolicy, noop } from "cockatiel";
import { Etcd3, GRPCDeadlineExceededError, isRecoverableError, RecoverableError, type IOptions } from "etcd3";
import { ConfigError } from "../../errors.ts";
import type { EtcdConfig } from "./config.ts";

function readPem(field: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`etcd config: ${field}: cannot read ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

/**
 * With a single endpoint, a call etcd did not answer in time says etcd is busy, not that the
 * connection is broken. etcd3 counts a deadline as "recoverable": it closes every channel to
 * the host (the next calls wait for a new connection, and fail with "waiting for name
 * resolution" when their deadline is short) and retries the call with the same, already
 * expired deadline, which fails at once and closes the channels again. Under load that was a
 * storm of reconnects that kept a 10-node cluster from recovering for minutes. So the error
 * stays a GRPCDeadlineExceededError (everything that classifies it still does), but loses the
 * mark that makes etcd3 reset and retry; our callers retry with fresh deadlines. A connection
 * that is really dead is still found by gRPC's keepalive ping (below), which fails its calls
 * as UNAVAILABLE. With several endpoints etcd3's behaviour stays: trying another member is
 * worth a reconnect.
 */
export function keepConnectionOnDeadline(inner: IPolicy): IPolicy {
  return {
    _altReturn: undefined as never,
    onSuccess: inner.onSuccess,
    onFailure: inner.onFailure,
    async execute(fn, signal) {
      try {
        return await inner.execute(fn, signal);
      } catch (err) {
        if (err instanceof GRPCDeadlineExceededError)
          delete (err as unknown as Record<symbol, unknown>)[RecoverableError];
        throw err;
      }
    },
  };
}

/** The etcd3 options for a config (exported for tests and for callers that add their own). */
export function etcdOptions(config: EtcdConfig): IOptions {
  const options: IOptions = {
    hosts: config.endpoints,
    faultHandling: {
      // etcd3's default breaker refuses every call to a host for 5 s after 3 failures in a row.
      // With one endpoint that turns a slow second of etcd into 5 s in which no keepalive,
      // release or revoke can even be tried, so every node's lease goes in doubt at once. With
      // several endpoints a failing host is worth skipping, but for a second, not five.
      host: () =>
        config.endpoints.length > 1
          ? circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) })
          : keepConnectionOnDeadline(noop),
    },
    // Unary calls get the request timeout; streams (watch, keepalive) live until closed.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + config.requestTimeout }),
    grpcOptions: {
      // Reconnect quickly after etcd comes back (grpc's default backoff grows to 2 minutes).
      "grpc.initial_reconnect_backoff_ms": 250,
      "grpc.max_reconnect_backoff_ms": 2000,
      // Listings are paginated, but props can be large: do not fail a page at grpc's 4 MiB.
      "grpc.max_receive_message_length": 256 * 1024 * 1024,
      // Notice a dead connection (etcd host gone, half-open TCP) even when no request is due:
      // a silent watch stream would otherwise miss changes. etcd accepts pings every 5 s+.
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
    },
  };
  const tls = config.tls;
  if (tls) {
    const ca = tls.ca ? readPem("tls.ca", tls.ca) : undefined;
    const cert = tls.cert ? readPem("tls.cert", tls.cert) : undefined;
    const key = tls.key ? readPem("tls.key", tls.key) : undefined;
    // grpc wants a root certificate slot even when only a client certificate is given;
    // an empty buffer there would disable verification, so use the system roots (null).
    options.credentials = {
      rootCertificate: ca as Buffer,
      ...(key ? { privateKey: key } : {}),
      ...(cert ? { certChain: cert } : {}),
    };
  }
  if (config.username !== undefined) {
    options.auth = { username: config.username, password: config.password ?? "" };
  }
  return options;
}

/** Connect (lazily: the first request dials) to the etcd cluster described by `config`. */
export function connectEtcd(config: EtcdConfig): Etcd3 {
  return new Etcd3(etcdOptions(config));
}
