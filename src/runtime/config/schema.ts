/**
 * The runtime's configuration: the effective shape (RuntimeConfig) and one table, KEYS, that
 * says for every setting its file key, env var, flag, whether it is secret, and how a raw value
 * is validated (zod). Everything else in config/ (file/env/flag sources, validation messages,
 * redaction, `metafora config` output, help text) is driven by this table, so a new setting is
 * one new row.
 */
import type { z } from "zod";
import { formatDuration } from "./duration.ts";
import type { DeclarativeTask } from "./values.ts";
import {
  duration,
  leaseTtlSeconds,
  onOff,
  fraction,
  steps,
  count,
  nonEmpty,
  oneOf,
  nodeName,
  namespace,
  listen,
  endpoints,
  declarativeTasks,
} from "./values.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "pretty" | "json";
export type { DeclarativeTask } from "./values.ts";
export type CoordinatorKind = "embedded" | "etcd";

/** The effective configuration every part of the runtime reads. Paths are absolute. */
export interface RuntimeConfig {
  node: string;
  namespace: string;
  coordinator: CoordinatorKind;
  /** Handler folder (absolute). */
  handlers: string;
  /** Embedded coordinator's data folder (absolute). */
  dataDir: string;
  /** 0 = unlimited. */
  maxTasks: number;
  /** ms */
  balanceEvery: number;
  /** Membership-driven rebalancing and claim deferral (ms unless said otherwise). */
  rebalance: {
    enabled: boolean;
    debounce: number;
    jitter: number;
    driftEvery: number;
    window: number;
    steps: number;
    /** Fraction of the share a node may hold above it before it hands tasks back. */
    allowance: number;
    claimDeferLimit: number;
  };
  /** ms */
  shutdownTimeout: number;
  /** seconds */
  leaseTtl: number;
  /** ms: a handler that releases its task this soon after the claim is backed off (0 = never). */
  quickRelease: number;
  /** ms: first back-off after a quick release; doubles per repeat up to releaseBackoffMax. */
  releaseBackoff: number;
  /** ms */
  releaseBackoffMax: number;
  /** ms: how long one handler module may take to load (its top-level await included). */
  handlerLoadTimeout: number;
  http: { listen: string | "off"; token?: string };
  log: { level: LogLevel; format: LogFormat };
  etcd: {
    endpoints: string[];
    username?: string;
    password?: string;
    ca?: string;
    cert?: string;
    key?: string;
    /** ms */
    dialTimeout: number;
    /** ms */
    requestTimeout: number;
  };
  tasks: DeclarativeTask[];
}

/** Where a value came from; named in every validation error and in `metafora config`. */
export type Source =
  | { kind: "default" }
  | { kind: "file"; path: string }
  | { kind: "env"; name: string }
  | { kind: "flag"; name: string };

export function describeSource(source: Source): string {
  switch (source.kind) {
    case "default":
      return "default";
    case "file":
      return `file ${source.path}`;
    case "env":
      return `env ${source.name}`;
    case "flag":
      return `flag ${source.name}`;
  }
}

// ---- the table ----------------------------------------------------------------------------

export interface KeySpec {
  /** File key, dotted for tables: "etcd.dial_timeout". */
  readonly key: string;
  /** Env var, if the setting has one. */
  readonly env?: string;
  /** Long flag without dashes ("lease-ttl"), if the setting has one. */
  readonly flag?: string;
  readonly secret?: boolean;
  /** One line for help and `metafora config`. */
  readonly doc: string;
  readonly schema: z.ZodType<unknown>;
  /** How to print the validated value back in file form (durations as strings). */
  readonly show?: (value: unknown) => unknown;
}

const showMs = (v: unknown): unknown => (typeof v === "number" ? formatDuration(v) : v);
const showSeconds = (v: unknown): unknown => (typeof v === "number" ? formatDuration(v * 1000) : v);

export const KEYS: readonly KeySpec[] = [
  {
    key: "node",
    env: "METAFORA_NODE",
    flag: "node",
    doc: "node name, unique in the namespace (default: derived from the host name)",
    schema: nodeName,
  },
  {
    key: "namespace",
    env: "METAFORA_NAMESPACE",
    flag: "namespace",
    doc: "key prefix shared by the cluster",
    schema: namespace,
  },
  {
    key: "coordinator",
    env: "METAFORA_COORDINATOR",
    flag: "coordinator",
    doc: '"embedded" (one node, data on disk) or "etcd"',
    schema: oneOf(["embedded", "etcd"] as const),
  },
  {
    key: "handlers",
    env: "METAFORA_HANDLERS",
    flag: "handlers",
    doc: "handler folder",
    schema: nonEmpty("a folder path"),
  },
  {
    key: "data_dir",
    env: "METAFORA_DATA_DIR",
    flag: "data-dir",
    doc: "embedded coordinator's data folder",
    schema: nonEmpty("a folder path"),
  },
  {
    key: "max_tasks",
    env: "METAFORA_MAX_TASKS",
    flag: "max-tasks",
    doc: "most tasks this node runs at once (0 = unlimited)",
    schema: count,
  },
  {
    key: "balance_every",
    env: "METAFORA_BALANCE_EVERY",
    flag: "balance-every",
    doc: "rebalancing interval",
    schema: duration(1000),
    show: showMs,
  },
  {
    key: "rebalance.enabled",
    env: "METAFORA_REBALANCE",
    doc: "rebalance when nodes join, leave or return, and when the spread drifts",
    schema: onOff,
  },
  {
    key: "rebalance.debounce",
    env: "METAFORA_REBALANCE_DEBOUNCE",
    doc: "quiet time after a change of the node set before rebalancing",
    schema: duration(0),
    show: showMs,
  },
  {
    key: "rebalance.jitter",
    env: "METAFORA_REBALANCE_JITTER",
    doc: "extra random delay (0 to this) so nodes do not act in lockstep",
    schema: duration(0),
    show: showMs,
  },
  {
    key: "rebalance.drift_every",
    env: "METAFORA_REBALANCE_DRIFT_EVERY",
    doc: "how often the spread is checked for drift",
    schema: duration(100),
    show: showMs,
  },
  {
    key: "rebalance.window",
    env: "METAFORA_REBALANCE_WINDOW",
    doc: "a rebalance's releases are spread over this long",
    schema: duration(0),
    show: showMs,
  },
  { key: "rebalance.steps", env: "METAFORA_REBALANCE_STEPS", doc: "... in at most this many slices", schema: steps },
  {
    key: "rebalance.allowance",
    env: "METAFORA_REBALANCE_ALLOWANCE",
    doc: "a node hands tasks back only above ceil(share) + max(1, share × this)",
    schema: fraction,
  },
  {
    key: "rebalance.claim_defer_limit",
    env: "METAFORA_CLAIM_DEFER_LIMIT",
    doc: "longest a node at its share defers a task to nodes below theirs",
    schema: duration(0),
    show: showMs,
  },
  {
    key: "shutdown_timeout",
    env: "METAFORA_SHUTDOWN_TIMEOUT",
    flag: "shutdown-timeout",
    doc: "how long shutdown waits for handlers",
    schema: duration(0),
    show: showMs,
  },
  {
    key: "lease_ttl",
    env: "METAFORA_LEASE_TTL",
    flag: "lease-ttl",
    doc: "etcd lease TTL (whole seconds)",
    schema: leaseTtlSeconds,
    show: showSeconds,
  },
  {
    key: "quick_release",
    env: "METAFORA_QUICK_RELEASE",
    flag: "quick-release",
    doc: 'a task its handler releases this soon after the claim is backed off on this node ("0s" = never)',
    schema: duration(0),
    show: showMs,
  },
  {
    key: "release_backoff",
    env: "METAFORA_RELEASE_BACKOFF",
    flag: "release-backoff",
    doc: "first back-off after a quick release; doubles per repeat",
    schema: duration(0),
    show: showMs,
  },
  {
    key: "release_backoff_max",
    env: "METAFORA_RELEASE_BACKOFF_MAX",
    flag: "release-backoff-max",
    doc: "longest back-off after quick releases",
    schema: duration(0),
    show: showMs,
  },
  {
    key: "handler_load_timeout",
    env: "METAFORA_HANDLER_LOAD_TIMEOUT",
    flag: "handler-load-timeout",
    doc: "how long one handler module may take to load (top-level await included)",
    schema: duration(1),
    show: showMs,
  },
  {
    key: "http.listen",
    env: "METAFORA_HTTP",
    flag: "http",
    doc: 'HTTP listen address "host:port", or "off"',
    schema: listen,
  },
  {
    key: "http.token",
    env: "METAFORA_TOKEN",
    flag: "token",
    secret: true,
    doc: "bearer token for state-changing HTTP requests",
    schema: nonEmpty("a token"),
  },
  {
    key: "log.level",
    env: "METAFORA_LOG_LEVEL",
    flag: "log-level",
    doc: "debug, info, warn or error",
    schema: oneOf(["debug", "info", "warn", "error"] as const),
  },
  {
    key: "log.format",
    env: "METAFORA_LOG_FORMAT",
    flag: "log-format",
    doc: "pretty or json (default: pretty on a terminal, else json)",
    schema: oneOf(["pretty", "json"] as const),
  },
  {
    key: "etcd.endpoints",
    env: "METAFORA_ETCD_ENDPOINTS",
    flag: "etcd-endpoints",
    doc: "etcd endpoints; setting only this selects the etcd coordinator",
    schema: endpoints,
  },
  {
    key: "etcd.username",
    env: "METAFORA_ETCD_USERNAME",
    flag: "etcd-username",
    doc: "etcd user",
    schema: nonEmpty("a user name"),
  },
  {
    key: "etcd.password",
    env: "METAFORA_ETCD_PASSWORD",
    secret: true,
    doc: "etcd password (file or env only)",
    schema: nonEmpty("a password"),
  },
  {
    key: "etcd.ca",
    env: "METAFORA_ETCD_CA",
    flag: "etcd-ca",
    doc: "CA certificate file (PEM)",
    schema: nonEmpty("a file path"),
  },
  {
    key: "etcd.cert",
    env: "METAFORA_ETCD_CERT",
    flag: "etcd-cert",
    doc: "client certificate file (PEM)",
    schema: nonEmpty("a file path"),
  },
  {
    key: "etcd.key",
    env: "METAFORA_ETCD_KEY",
    flag: "etcd-key",
    doc: "client key file (PEM)",
    schema: nonEmpty("a file path"),
  },
  {
    key: "etcd.dial_timeout",
    env: "METAFORA_ETCD_DIAL_TIMEOUT",
    flag: "etcd-dial-timeout",
    doc: "etcd connect timeout",
    schema: duration(1),
    show: showMs,
  },
  {
    key: "etcd.request_timeout",
    env: "METAFORA_ETCD_REQUEST_TIMEOUT",
    flag: "etcd-request-timeout",
    doc: "etcd request timeout",
    schema: duration(1),
    show: showMs,
  },
  {
    key: "tasks",
    doc: "declarative tasks ([[tasks]] id, handler, props), submitted at start-up if absent",
    schema: declarativeTasks,
  },
];

/** Tables allowed at the top level of the file, and the keys each one holds. */
export const TABLES = ["http", "log", "etcd", "rebalance"] as const;

export const KEY_BY_NAME: ReadonlyMap<string, KeySpec> = new Map(KEYS.map((k) => [k.key, k]));

/** Raw defaults, in file form (they go through the same validators as every other source). */
export const DEFAULTS: Readonly<Record<string, unknown>> = {
  namespace: "/metafora",
  coordinator: "embedded",
  handlers: "handlers",
  data_dir: ".metafora",
  max_tasks: 0,
  balance_every: "5m",
  "rebalance.enabled": true,
  "rebalance.debounce": "500ms",
  "rebalance.jitter": "1s",
  "rebalance.drift_every": "5s",
  "rebalance.window": "2s",
  "rebalance.steps": 5,
  "rebalance.allowance": 0.05,
  "rebalance.claim_defer_limit": "5s",
  shutdown_timeout: "30s",
  lease_ttl: "10s",
  quick_release: "1s",
  release_backoff: "1s",
  release_backoff_max: "1m",
  handler_load_timeout: "10s",
  "http.listen": "127.0.0.1:7070",
  "log.level": "info",
  "etcd.endpoints": [],
  "etcd.dial_timeout": "5s",
  "etcd.request_timeout": "5s",
  tasks: [],
};

/** The env var that names the config file (not a setting itself). */
export const CONFIG_ENV = "METAFORA_CONFIG";
export const CONFIG_FLAG = "config";
export const DEFAULT_CONFIG_FILE = "config/metafora.toml";
