/**
 * loadConfig: defaults < file < env < flags, validated once, every problem reported together
 * in one ConfigError whose lines name the key, the source of the offending value and what is
 * allowed.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { isAbsolute, resolve } from "node:path";
import { ConfigError } from "../../errors.ts";
import { formatDuration } from "./duration.ts";
import { envLayer, type Env } from "./env.ts";
import { readConfigFile } from "./file.ts";
import { flagLayer } from "./flags.ts";
import { mergeLayers, type Layer } from "./layer.ts";
import {
  CONFIG_ENV,
  CONFIG_FLAG,
  DEFAULT_CONFIG_FILE,
  DEFAULTS,
  describeSource,
  KEYS,
  type DeclarativeTask,
  type RuntimeConfig,
  type Source,
} from "./schema.ts";

export interface LoadConfigOptions {
  /** Config flags by name without dashes ("lease-ttl"), raw strings (see configFlagsFromArgv). */
  argvFlags?: Readonly<Record<string, string | undefined>>;
  env?: Env;
  /** Relative paths (config file, handlers, data dir, TLS files) resolve against this. */
  cwd?: string;
  /** Whether stdout is a terminal: picks the default log format. Default: process.stdout.isTTY. */
  isTTY?: boolean;
  /** Host name the default node name derives from. Default: os.hostname(). */
  hostname?: string;
  /** Problems found before loading (e.g. a flag given without a value), reported with the rest. */
  preErrors?: string[];
}

export interface LoadedConfig {
  config: RuntimeConfig;
  /** Where each setting's effective value came from, by file key. */
  sources: ReadonlyMap<string, Source>;
  /** The config file read, if any (absolute). */
  file?: string;
}

export async function loadConfig(opts: LoadConfigOptions = {}): Promise<RuntimeConfig> {
  return (await loadConfigWithSources(opts)).config;
}

export async function loadConfigWithSources(opts: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = opts.env ?? {};
  const flags = opts.argvFlags ?? {};
  const cwd = opts.cwd ?? process.cwd();
  const errors: string[] = [...(opts.preErrors ?? [])];

  // Which file: --config, else METAFORA_CONFIG, else config/metafora.toml if it exists.
  let file: string | undefined;
  let fileLayer: Layer = new Map();
  const explicit =
    flags[CONFIG_FLAG] !== undefined
      ? { path: flags[CONFIG_FLAG]!, source: `flag --${CONFIG_FLAG}` }
      : env[CONFIG_ENV]
        ? { path: env[CONFIG_ENV]!, source: `env ${CONFIG_ENV}` }
        : undefined;
  const candidate = explicit ? resolve(cwd, explicit.path) : resolve(cwd, DEFAULT_CONFIG_FILE);
  if (existsSync(candidate)) {
    file = candidate;
    const shown = explicit?.path ?? DEFAULT_CONFIG_FILE;
    try {
      const read = readConfigFile(candidate, shown);
      fileLayer = read.layer;
      errors.push(...read.errors);
    } catch (err) {
      errors.push((err as Error).message);
    }
  } else if (explicit) {
    errors.push(`config file ${explicit.path} (from ${explicit.source}) does not exist (looked at ${candidate})`);
  }

  const fromEnv = envLayer(env);
  errors.push(...fromEnv.errors);
  const fromFlags = flagLayer(flags);

  const defaults: Layer = new Map(
    Object.entries(DEFAULTS).map(([k, v]) => [k, { value: v, source: { kind: "default" } as Source }]),
  );
  defaults.set("node", { value: defaultNodeName(opts.hostname ?? hostname()), source: { kind: "default" } });
  defaults.set("log.format", {
    value: (opts.isTTY ?? process.stdout.isTTY) ? "pretty" : "json",
    source: { kind: "default" },
  });

  const merged = mergeLayers(defaults, fileLayer, fromEnv.layer, fromFlags);

  // Pointing a node at etcd takes one setting: endpoints imply the etcd coordinator when they
  // come from a higher layer than the coordinator setting (the default, or the file when the
  // endpoints come from env/flags). A coordinator set in env or flags always stands.
  const endpointsRaw = merged.get("etcd.endpoints")!;
  const coordinatorRaw = merged.get("coordinator")!;
  const rank = { default: 0, file: 1, env: 2, flag: 3 } as const;
  const coordinatorRank = rank[coordinatorRaw.source.kind];
  const hasEndpoints = endpointsRaw.source.kind !== "default";
  if (hasEndpoints && coordinatorRank <= rank.file && rank[endpointsRaw.source.kind] > coordinatorRank) {
    merged.set("coordinator", { value: "etcd", source: endpointsRaw.source });
  }

  // Validate every key; collect all problems.
  const values = new Map<string, unknown>();
  const sources = new Map<string, Source>();
  for (const spec of KEYS) {
    const raw = merged.get(spec.key);
    if (!raw) continue;
    sources.set(spec.key, raw.source);
    const parsed = spec.schema.safeParse(raw.value);
    if (parsed.success) {
      values.set(spec.key, parsed.data);
      continue;
    }
    for (const issue of parsed.error.issues) {
      const where = issue.path.length > 0 ? `${spec.key}${formatPath(issue.path)}` : spec.key;
      const shown = spec.secret ? "(secret)" : showRaw(issue.path.length > 0 ? undefined : raw.value);
      errors.push(`${where}${shown ? ` = ${shown}` : ""} (from ${describeSource(raw.source)}): ${issue.message}`);
    }
  }

  if (errors.length === 0) errors.push(...crossChecks(values, sources, cwd));
  if (errors.length > 0) {
    throw new ConfigError(`invalid configuration:\n${errors.map((e) => `  - ${e}`).join("\n")}`);
  }

  const get = <T>(key: string): T => values.get(key) as T;
  const optional = <T>(key: string): T | undefined => values.get(key) as T | undefined;
  const path = (key: string): string => resolve(cwd, get<string>(key));
  const optionalPath = (key: string): string | undefined => {
    const v = optional<string>(key);
    return v === undefined ? undefined : isAbsolute(v) ? v : resolve(cwd, v);
  };

  const config: RuntimeConfig = {
    node: get("node"),
    namespace: get("namespace"),
    coordinator: get("coordinator"),
    handlers: path("handlers"),
    dataDir: path("data_dir"),
    maxTasks: get("max_tasks"),
    balanceEvery: get("balance_every"),
    rebalance: {
      enabled: get("rebalance.enabled"),
      debounce: get("rebalance.debounce"),
      jitter: get("rebalance.jitter"),
      driftEvery: get("rebalance.drift_every"),
      window: get("rebalance.window"),
      steps: get("rebalance.steps"),
      allowance: get("rebalance.allowance"),
      claimDeferLimit: get("rebalance.claim_defer_limit"),
    },
    shutdownTimeout: get("shutdown_timeout"),
    leaseTtl: get("lease_ttl"),
    quickRelease: get("quick_release"),
    releaseBackoff: get("release_backoff"),
    releaseBackoffMax: get("release_backoff_max"),
    handlerLoadTimeout: get("handler_load_timeout"),
    http: withoutUndefined({ listen: get<string>("http.listen"), token: optional<string>("http.token") }),
    log: { level: get("log.level"), format: get("log.format") },
    etcd: withoutUndefined({
      endpoints: get<string[]>("etcd.endpoints"),
      username: optional<string>("etcd.username"),
      password: optional<string>("etcd.password"),
      ca: optionalPath("etcd.ca"),
      cert: optionalPath("etcd.cert"),
      key: optionalPath("etcd.key"),
      dialTimeout: get<number>("etcd.dial_timeout"),
      requestTimeout: get<number>("etcd.request_timeout"),
    }),
    tasks: get<DeclarativeTask[]>("tasks"),
  };
  return file === undefined ? { config, sources } : { config, sources, file };
}

/** Stable default node name from the host name: characters a node name allows, else "metafora". */
export function defaultNodeName(host: string): string {
  const cleaned = host.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "");
  return cleaned === "" || cleaned === "_metafora" ? "metafora" : cleaned;
}

/** Rules that involve more than one key; only run once every key is valid on its own. */
function crossChecks(values: Map<string, unknown>, sources: Map<string, Source>, cwd: string): string[] {
  const errors: string[] = [];
  const from = (key: string): string => {
    const s = sources.get(key);
    return s ? describeSource(s) : "default";
  };
  if ((values.get("release_backoff_max") as number) < (values.get("release_backoff") as number)) {
    errors.push(
      `release_backoff_max = ${formatDuration(values.get("release_backoff_max") as number)} (from ${from("release_backoff_max")}) is shorter than release_backoff = ${formatDuration(values.get("release_backoff") as number)} (from ${from("release_backoff")}); expected release_backoff_max >= release_backoff`,
    );
  }
  if (values.get("coordinator") === "etcd") {
    const endpoints = values.get("etcd.endpoints") as string[];
    if (endpoints.length === 0) {
      errors.push(
        `etcd.endpoints is required when coordinator = "etcd" (coordinator from ${from("coordinator")}); set METAFORA_ETCD_ENDPOINTS, --etcd-endpoints or [etcd] endpoints`,
      );
    }
    const cert = values.get("etcd.cert");
    const key = values.get("etcd.key");
    if ((cert === undefined) !== (key === undefined)) {
      const given = cert === undefined ? "etcd.key" : "etcd.cert";
      errors.push(
        `${given} (from ${from(given)}) needs its pair: set both etcd.cert and etcd.key for TLS client authentication, or neither`,
      );
    }
    for (const k of ["etcd.ca", "etcd.cert", "etcd.key"] as const) {
      const p = values.get(k) as string | undefined;
      if (p === undefined) continue;
      const problem = pemProblem(resolve(cwd, p), k === "etcd.key" ? "key" : "certificate");
      if (problem) errors.push(`${k} = ${JSON.stringify(p)} (from ${from(k)}): ${problem}`);
    }
    // Bun and Deno refuse an IP address as the TLS server name (RFC 6066) and grpc-js always
    // sends the endpoint's host as one, so TLS to an IP endpoint can never connect: say so now
    // rather than let the node fail later with an opaque "UNAVAILABLE".
    const tls = cert !== undefined || values.has("etcd.ca") || endpoints.some((e) => e.startsWith("https://"));
    if (tls) {
      const ipEndpoints = endpoints.filter((e) => isIP(endpointHost(e)) !== 0);
      if (ipEndpoints.length > 0) {
        errors.push(
          `etcd.endpoints (from ${from("etcd.endpoints")}): ${ipEndpoints.map((e) => JSON.stringify(e)).join(", ")} ${ipEndpoints.length === 1 ? "is an IP address" : "are IP addresses"}; with TLS the runtime (Bun/Deno) cannot send an IP address as the TLS server name, so use a host name that etcd's certificate names (e.g. "localhost:2379", "etcd-1.internal:2379")`,
        );
      }
    }
    if (values.has("etcd.password") && !values.has("etcd.username")) {
      errors.push(`etcd.password (from ${from("etcd.password")}) is set without etcd.username; set both or neither`);
    }
  }
  return errors;
}

/**
 * Why a TLS file cannot be used, or undefined. Checked here so a wrong file is named with its
 * setting, instead of failing later inside the TLS stack with an OpenSSL code.
 */
function pemProblem(path: string, kind: "certificate" | "key"): string | undefined {
  if (!existsSync(path)) return "file not found";
  let text: string;
  try {
    if (statSync(path).isDirectory()) return `is a folder; expected a PEM ${kind} file`;
    text = readFileSync(path, "latin1");
  } catch (err) {
    return `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); expected a readable PEM ${kind} file`;
  }
  const expected =
    kind === "key"
      ? `a PEM private key ("-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----" or "-----BEGIN EC PRIVATE KEY-----")`
      : `a PEM certificate ("-----BEGIN CERTIFICATE-----")`;
  const ok =
    kind === "key" ? /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/.test(text) : text.includes("-----BEGIN CERTIFICATE-----");
  if (ok) return undefined;
  if (text.trim() === "") return `is empty; expected ${expected}`;
  return `is not ${expected}${kind === "certificate" && /PRIVATE KEY-----/.test(text) ? "; it holds a private key (swapped with etcd.key?)" : kind === "key" && text.includes("-----BEGIN CERTIFICATE-----") ? "; it holds a certificate (swapped with etcd.cert?)" : ""}`;
}

/** "https://[::1]:2379" → "::1"; "host:2379" → "host". */
function endpointHost(endpoint: string): string {
  const rest = endpoint.replace(/^https?:\/\//, "").replace(/\/$/, "");
  const bracketed = /^\[([^\]]+)\]/.exec(rest);
  if (bracketed) return bracketed[1]!;
  const colon = rest.lastIndexOf(":");
  return colon === -1 ? rest : rest.slice(0, colon);
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
}

function showRaw(value: unknown): string {
  if (value === undefined) return "";
  try {
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return String(value);
  }
}

function withoutUndefined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
