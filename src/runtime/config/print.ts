/**
 * `metafora config` output: the effective configuration as a TOML file you could use, each
 * value annotated with its source, secrets redacted.
 */
import { stringify } from "smol-toml";
import { REDACTED } from "./redact.ts";
import { describeSource, KEYS, type KeySpec, type RuntimeConfig, type Source } from "./schema.ts";

/** Value of a key in file form (durations as strings), from the effective config. */
function fileValue(config: RuntimeConfig, spec: KeySpec): unknown {
  const byKey: Record<string, unknown> = {
    node: config.node,
    namespace: config.namespace,
    coordinator: config.coordinator,
    handlers: config.handlers,
    data_dir: config.dataDir,
    max_tasks: config.maxTasks,
    balance_every: config.balanceEvery,
    "rebalance.enabled": config.rebalance.enabled,
    "rebalance.debounce": config.rebalance.debounce,
    "rebalance.jitter": config.rebalance.jitter,
    "rebalance.drift_every": config.rebalance.driftEvery,
    "rebalance.window": config.rebalance.window,
    "rebalance.steps": config.rebalance.steps,
    "rebalance.allowance": config.rebalance.allowance,
    "rebalance.claim_defer_limit": config.rebalance.claimDeferLimit,
    shutdown_timeout: config.shutdownTimeout,
    lease_ttl: config.leaseTtl,
    "http.listen": config.http.listen,
    "http.token": config.http.token,
    "log.level": config.log.level,
    "log.format": config.log.format,
    "etcd.endpoints": config.etcd.endpoints,
    "etcd.username": config.etcd.username,
    "etcd.password": config.etcd.password,
    "etcd.ca": config.etcd.ca,
    "etcd.cert": config.etcd.cert,
    "etcd.key": config.etcd.key,
    "etcd.dial_timeout": config.etcd.dialTimeout,
    "etcd.request_timeout": config.etcd.requestTimeout,
    tasks: config.tasks,
  };
  const value = byKey[spec.key];
  if (value === undefined) return undefined;
  if (spec.secret) return REDACTED;
  return spec.show ? spec.show(value) : value;
}

function line(name: string, value: unknown, source: Source | undefined): string {
  const rendered = stringify({ [name]: value }).trim();
  return `${rendered}${source ? `  # ${describeSource(source)}` : ""}`;
}

export function renderConfigToml(config: RuntimeConfig, sources: ReadonlyMap<string, Source>, file?: string): string {
  const out: string[] = [
    `# effective configuration${file ? ` (file: ${file})` : " (no config file)"}; secrets redacted`,
  ];
  for (const spec of KEYS) {
    if (spec.key.includes(".") || spec.key === "tasks") continue;
    const v = fileValue(config, spec);
    if (v !== undefined) out.push(line(spec.key, v, sources.get(spec.key)));
  }
  for (const table of ["http", "log", "etcd"]) {
    out.push("", `[${table}]`);
    for (const spec of KEYS.filter((k) => k.key.startsWith(`${table}.`))) {
      const v = fileValue(config, spec);
      if (v !== undefined) out.push(line(spec.key.slice(table.length + 1), v, sources.get(spec.key)));
    }
  }
  if (config.tasks.length > 0) {
    const src = sources.get("tasks");
    out.push(
      "",
      `# declarative tasks${src ? ` (${describeSource(src)})` : ""}`,
      stringify({ tasks: config.tasks }).trim(),
    );
  }
  return `${out.join("\n")}\n`;
}
