/**
 * etcd connection and node settings, validated with zod. Every refusal is a ConfigError that
 * names the field, the value (never a password) and what is allowed.
 */
import { z } from "zod";
import { ConfigError } from "../../errors.ts";
import { invalidNodeNameReason, normalizeNamespace } from "./keys.ts";

export interface EtcdTlsConfig {
  /** PEM file with the CA that signed etcd's server certificate. */
  readonly ca?: string;
  /** PEM client certificate file (needs `key`). */
  readonly cert?: string;
  /** PEM client private key file (needs `cert`). */
  readonly key?: string;
}

/** Validated, normalised settings (see parseEtcdConfig). */
export interface EtcdConfig {
  /** Full URLs, e.g. "http://127.0.0.1:2379" ("https://" when tls is set and no scheme was given). */
  readonly endpoints: string[];
  /** Normalised like Go's NewConfig: "/metafora". */
  readonly namespace: string;
  /** This node's name; required by the coordinator, unused by the client. */
  readonly node?: string;
  /** Lease TTL in seconds requested from etcd (default 10). etcd may grant more (its minimum). */
  readonly leaseTtl: number;
  /** Milliseconds the coordinator waits for etcd to answer its first request (default 5000). */
  readonly dialTimeout: number;
  /** Deadline in milliseconds for each unary request (default 5000). */
  readonly requestTimeout: number;
  readonly tls?: EtcdTlsConfig;
  readonly username?: string;
  readonly password?: string;
}

/** What callers may pass: endpoints as a list or a comma-separated string, defaults filled in. */
export interface EtcdConfigInput {
  endpoints: string | string[];
  namespace: string;
  node?: string;
  leaseTtl?: number;
  dialTimeout?: number;
  requestTimeout?: number;
  tls?: EtcdTlsConfig;
  username?: string;
  password?: string;
}

export const DEFAULT_LEASE_TTL = 10;
const DEFAULT_TIMEOUT = 5000;

const ms = (what: string) =>
  z
    .number({ error: `${what} must be a number of milliseconds` })
    .int(`${what} must be a whole number of milliseconds`)
    .min(1, `${what} must be at least 1 ms`)
    .max(3_600_000, `${what} must be at most 3600000 ms (1 hour)`);

const schema = z
  .object({
    endpoints: z.union([z.string(), z.array(z.string())], {
      error: 'endpoints must be a list of "host:port" or "http(s)://host:port" strings',
    }),
    namespace: z.string({ error: 'namespace must be a string like "/metafora"' }),
    node: z.string({ error: "node must be a string" }).optional(),
    leaseTtl: z
      .number({ error: "leaseTtl must be a number of seconds" })
      .int("leaseTtl must be a whole number of seconds (etcd leases have 1 s resolution)")
      .min(1, "leaseTtl must be at least 1 second")
      .max(86_400, "leaseTtl must be at most 86400 seconds")
      .default(DEFAULT_LEASE_TTL),
    dialTimeout: ms("dialTimeout").default(DEFAULT_TIMEOUT),
    requestTimeout: ms("requestTimeout").default(DEFAULT_TIMEOUT),
    tls: z
      .object({
        ca: z.string().min(1, "tls.ca must be a file path").optional(),
        cert: z.string().min(1, "tls.cert must be a file path").optional(),
        key: z.string().min(1, "tls.key must be a file path").optional(),
      })
      .strict()
      .optional(),
    username: z.string().min(1, "username must not be empty").optional(),
    password: z.string().optional(),
  })
  .strict();

function issuePath(path: readonly PropertyKey[]): string {
  return path
    .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
    .join("")
    .replace(/^\./, "");
}

/** Turn "host:port" or a URL into a URL etcd3 understands; throws a message on bad input. */
function normalizeEndpoint(raw: string, tls: boolean): string {
  const value = raw.trim();
  if (value === "") throw new Error("is empty");
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `${tls ? "https" : "http"}://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`${JSON.stringify(raw)} is not "host:port" or "http(s)://host:port"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`${JSON.stringify(raw)} uses ${url.protocol.replace(":", "")}; expected http or https`);
  }
  if (!url.hostname) throw new Error(`${JSON.stringify(raw)} has no host`);
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash || url.username || url.password) {
    throw new Error(`${JSON.stringify(raw)} must be just scheme, host and port (credentials go in username/password)`);
  }
  if (tls && url.protocol === "http:") {
    throw new Error(`${JSON.stringify(raw)} is plain http but tls is configured; use https:// or leave the scheme out`);
  }
  const port = url.port || "2379";
  return `${url.protocol}//${url.hostname}:${port}`;
}

/**
 * Validate and normalise etcd settings. `source` names where they came from (for example
 * "metafora.toml [etcd]") and prefixes every error.
 */
export function parseEtcdConfig(input: unknown, source = "etcd config"): EtcdConfig {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const at = issuePath(issue.path);
      return at ? `${at}: ${issue.message}` : issue.message;
    });
    throw new ConfigError(`${source}: ${lines.join("; ")}`);
  }
  const v = parsed.data;
  const fail = (field: string, message: string): never => {
    throw new ConfigError(`${source}: ${field}: ${message}`);
  };

  const tls = v.tls && (v.tls.ca || v.tls.cert || v.tls.key) ? v.tls : undefined;
  if (tls && Boolean(tls.cert) !== Boolean(tls.key)) {
    fail(
      tls.cert ? "tls.key" : "tls.cert",
      "tls.cert and tls.key must be given together (client certificate and its key)",
    );
  }

  const rawEndpoints = typeof v.endpoints === "string" ? v.endpoints.split(",") : v.endpoints;
  if (rawEndpoints.length === 0 || rawEndpoints.every((e) => e.trim() === "")) {
    fail("endpoints", 'needs at least one "host:port" or "http(s)://host:port"');
  }
  const endpoints = rawEndpoints.map((e, i) => {
    try {
      return normalizeEndpoint(e, Boolean(tls));
    } catch (err) {
      return fail(`endpoints[${i}]`, (err as Error).message);
    }
  });

  let namespace = "";
  try {
    namespace = normalizeNamespace(v.namespace);
  } catch (err) {
    fail("namespace", (err as Error).message);
  }

  if (v.node !== undefined) {
    const reason = invalidNodeNameReason(v.node);
    if (reason) fail("node", reason);
  }

  if ((v.username === undefined) !== (v.password === undefined)) {
    fail(v.username === undefined ? "username" : "password", "username and password must be given together");
  }

  const config: EtcdConfig = {
    endpoints,
    namespace,
    leaseTtl: v.leaseTtl,
    dialTimeout: v.dialTimeout,
    requestTimeout: v.requestTimeout,
    ...(v.node !== undefined ? { node: v.node } : {}),
    ...(tls
      ? {
          tls: {
            ...(tls.ca ? { ca: tls.ca } : {}),
            ...(tls.cert ? { cert: tls.cert } : {}),
            ...(tls.key ? { key: tls.key } : {}),
          },
        }
      : {}),
    ...(v.username !== undefined ? { username: v.username, password: v.password ?? "" } : {}),
  };
  return config;
}

/** The config as it may be logged or printed: the password replaced by "<redacted>". */
export function redactEtcdConfig(config: EtcdConfig): Record<string, unknown> {
  const { password, ...rest } = config;
  return password === undefined ? { ...rest } : { ...rest, password: "<redacted>" };
}
