/** Config: precedence, durations, validation messages, raw flags, redaction (fast, in-process). */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../src/errors.ts";
import {
  configFlagsFromArgv,
  defaultNodeName,
  formatDuration,
  loadConfig,
  loadConfigWithSources,
  parseDuration,
  redactConfig,
  renderConfigToml,
} from "../../src/runtime/config/index.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function folder(toml?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "metafora-config-"));
  dirs.push(dir);
  if (toml !== undefined) {
    mkdirSync(join(dir, "config"));
    writeFileSync(join(dir, "config", "metafora.toml"), toml);
  }
  return dir;
}

async function configError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("durations", () => {
  test("parse Go-style durations", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("10s")).toBe(10_000);
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration("2h")).toBe(7_200_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration(" 5m ")).toBe(300_000);
    expect(parseDuration("0")).toBe(0);
  });
  test("refuse bare numbers, unknown units and junk", () => {
    for (const bad of ["30", "", "s", "10 s", "10sec", "1d", "-5s", "5s junk", "ms10"])
      expect(parseDuration(bad)).toBeUndefined();
  });
  test("format round-trips", () => {
    for (const ms of [0, 1, 999, 1000, 90_000, 3_600_000 + 61_001]) expect(parseDuration(formatDuration(ms))).toBe(ms);
    expect(formatDuration(90_000)).toBe("1m30s");
  });
});

describe("precedence: flags > env > file > defaults", () => {
  test("each layer overrides the one below, key by key", async () => {
    const cwd = folder(`max_tasks = 1\nshutdown_timeout = "1m"\nbalance_every = "2m"\nnode = "file-node"\n`);
    const { config, sources } = await loadConfigWithSources({
      cwd,
      env: { METAFORA_MAX_TASKS: "2", METAFORA_SHUTDOWN_TIMEOUT: "45s" },
      argvFlags: { "max-tasks": "3" },
      isTTY: false,
    });
    expect(config.maxTasks).toBe(3);
    expect(sources.get("max_tasks")).toEqual({ kind: "flag", name: "--max-tasks" });
    expect(config.shutdownTimeout).toBe(45_000);
    expect(sources.get("shutdown_timeout")).toEqual({ kind: "env", name: "METAFORA_SHUTDOWN_TIMEOUT" });
    expect(config.balanceEvery).toBe(120_000);
    expect(sources.get("balance_every")).toEqual({ kind: "file", path: "config/metafora.toml" });
    expect(config.node).toBe("file-node");
    expect(config.leaseTtl).toBe(10);
    expect(sources.get("lease_ttl")).toEqual({ kind: "default" });
  });

  test("defaults: embedded, handlers/ and .metafora under cwd, loopback HTTP, node from the host name", async () => {
    const cwd = folder();
    const config = await loadConfig({ cwd, env: {}, hostname: "build box.local", isTTY: true });
    expect(config.coordinator).toBe("embedded");
    expect(config.handlers).toBe(join(cwd, "handlers"));
    expect(config.dataDir).toBe(join(cwd, ".metafora"));
    expect(config.http).toEqual({ listen: "127.0.0.1:7070" });
    expect(config.node).toBe("build-box.local");
    expect(config.log).toEqual({ level: "info", format: "pretty" });
    expect(config.namespace).toBe("/metafora");
    expect(defaultNodeName("///")).toBe("metafora");
  });

  test("rebalance settings: defaults, a [rebalance] table, env vars, and clear errors", async () => {
    const defaults = await loadConfig({ cwd: folder(), env: {}, isTTY: false });
    expect(defaults.rebalance).toEqual({
      enabled: true,
      debounce: 500,
      jitter: 1000,
      driftEvery: 5000,
      window: 2000,
      steps: 5,
      allowance: 0.05,
      claimDeferLimit: 5000,
    });
    const cwd = folder(`[rebalance]\nenabled = false\nwindow = "3s"\nsteps = 2\nallowance = 0.1\n`);
    const { config, sources } = await loadConfigWithSources({
      cwd,
      env: {
        METAFORA_REBALANCE_DEBOUNCE: "50ms",
        METAFORA_CLAIM_DEFER_LIMIT: "2s",
        METAFORA_REBALANCE_ALLOWANCE: "0.02",
      },
      isTTY: false,
    });
    expect(config.rebalance).toEqual({
      enabled: false,
      debounce: 50,
      jitter: 1000,
      driftEvery: 5000,
      window: 3000,
      steps: 2,
      allowance: 0.02,
      claimDeferLimit: 2000,
    });
    expect(sources.get("rebalance.window")).toEqual({ kind: "file", path: "config/metafora.toml" });
    expect(sources.get("rebalance.allowance")).toEqual({ kind: "env", name: "METAFORA_REBALANCE_ALLOWANCE" });
    expect(
      (await loadConfig({ cwd: folder(), env: { METAFORA_REBALANCE: "off" }, isTTY: false })).rebalance.enabled,
    ).toBe(false);
    const msg = await configError(
      loadConfig({
        cwd: folder(),
        env: { METAFORA_REBALANCE_ALLOWANCE: "5", METAFORA_REBALANCE_STEPS: "0", METAFORA_REBALANCE: "maybe" },
        isTTY: false,
      }),
    );
    expect(msg).toContain("METAFORA_REBALANCE_ALLOWANCE");
    expect(msg).toContain("expected a fraction from 0 to 1");
    expect(msg).toContain("expected a whole number >= 1");
    expect(msg).toContain("expected true or false");
  });

  test("log format defaults to json when stdout is not a terminal", async () => {
    expect((await loadConfig({ cwd: folder(), env: {}, isTTY: false })).log.format).toBe("json");
  });

  test("METAFORA_ETCD_ENDPOINTS alone selects etcd; METAFORA_COORDINATOR or --coordinator still wins", async () => {
    const cwd = folder(`coordinator = "embedded"\n`);
    const etcd = await loadConfigWithSources({
      cwd,
      env: { METAFORA_ETCD_ENDPOINTS: "10.0.0.1:2379, http://etcd-2:2379" },
    });
    expect(etcd.config.coordinator).toBe("etcd");
    expect(etcd.config.etcd.endpoints).toEqual(["10.0.0.1:2379", "http://etcd-2:2379"]);
    expect(etcd.sources.get("coordinator")).toEqual({ kind: "env", name: "METAFORA_ETCD_ENDPOINTS" });
    const envSays = await loadConfig({
      cwd,
      env: { METAFORA_ETCD_ENDPOINTS: "10.0.0.1:2379", METAFORA_COORDINATOR: "embedded" },
    });
    expect(envSays.coordinator).toBe("embedded");
    const flagSays = await loadConfig({
      cwd,
      env: { METAFORA_ETCD_ENDPOINTS: "10.0.0.1:2379" },
      argvFlags: { coordinator: "embedded" },
    });
    expect(flagSays.coordinator).toBe("embedded");
    // In the file: endpoints alone select etcd, but not over the file's own coordinator key.
    expect((await loadConfig({ cwd: folder(`[etcd]\nendpoints = ["h:1"]\n`), env: {} })).coordinator).toBe("etcd");
    const fileSays = await loadConfig({
      cwd: folder(`coordinator = "embedded"\n[etcd]\nendpoints = ["h:1"]\n`),
      env: {},
    });
    expect(fileSays.coordinator).toBe("embedded");
  });

  test("--config and METAFORA_CONFIG pick the file; a named file that does not exist is an error", async () => {
    const cwd = folder();
    writeFileSync(join(cwd, "a.toml"), `node = "from-a"\n`);
    writeFileSync(join(cwd, "b.toml"), `node = "from-b"\n`);
    expect((await loadConfig({ cwd, env: { METAFORA_CONFIG: "a.toml" } })).node).toBe("from-a");
    expect((await loadConfig({ cwd, env: { METAFORA_CONFIG: "a.toml" }, argvFlags: { config: "b.toml" } })).node).toBe(
      "from-b",
    );
    const msg = await configError(loadConfig({ cwd, env: { METAFORA_CONFIG: "missing.toml" } }));
    expect(msg).toContain("config file missing.toml (from env METAFORA_CONFIG) does not exist");
  });
});

describe("validation errors name key, source and what is allowed", () => {
  test("every problem is reported at once", async () => {
    const cwd = folder(
      `leese_ttl = "3s"\nmax_tasks = 1.5\n[http]\nlisten = "everywhere"\n[etcd]\ntimeout = "1s"\n[[tasks]]\nid = "a/b"\n`,
    );
    const msg = await configError(
      loadConfig({
        cwd,
        env: { METAFORA_LEASE_TTL: "1500ms", METAFORA_LOG_LEVEL: "verbose", METAFORA_TOKN: "x" },
        argvFlags: { "balance-every": "often" },
      }),
    );
    expect(msg).toContain('unknown key "leese_ttl" in file config/metafora.toml (did you mean "lease_ttl"?)');
    expect(msg).toContain('unknown key "etcd.timeout" in file config/metafora.toml');
    expect(msg).toContain("max_tasks = 1.5 (from file config/metafora.toml): expected a whole number >= 0");
    expect(msg).toContain('http.listen = "everywhere" (from file config/metafora.toml): expected "host:port"');
    expect(msg).toContain('lease_ttl = "1500ms" (from env METAFORA_LEASE_TTL): expected whole seconds');
    expect(msg).toContain(
      'log.level = "verbose" (from env METAFORA_LOG_LEVEL): expected one of "debug", "info", "warn", "error"',
    );
    expect(msg).toContain('balance_every = "often" (from flag --balance-every): expected a duration with a unit');
    expect(msg).toContain("unknown environment variable METAFORA_TOKN (did you mean METAFORA_TOKEN?)");
    expect(msg).toContain("tasks[0].id (from file config/metafora.toml): expected a task id");
  });

  test("a value of the wrong TOML type says what was expected", async () => {
    const msg = await configError(loadConfig({ cwd: folder(`shutdown_timeout = 30\nhttp = "x"\n`), env: {} }));
    expect(msg).toContain("shutdown_timeout = 30 (from file config/metafora.toml): expected a duration with a unit");
    expect(msg).toContain("[http] in file config/metafora.toml must be a table");
  });

  test("invalid TOML names the file", async () => {
    const msg = await configError(loadConfig({ cwd: folder(`node = "unterminated\n`), env: {} }));
    expect(msg).toContain("config file config/metafora.toml is not valid TOML");
  });

  test("etcd needs endpoints, paired cert/key, existing TLS files, username with password", async () => {
    const cwd = folder();
    const noEndpoints = await configError(loadConfig({ cwd, env: { METAFORA_COORDINATOR: "etcd" } }));
    expect(noEndpoints).toContain(
      'etcd.endpoints is required when coordinator = "etcd" (coordinator from env METAFORA_COORDINATOR)',
    );
    const tls = await configError(
      loadConfig({
        cwd,
        env: { METAFORA_ETCD_ENDPOINTS: "h:2379", METAFORA_ETCD_CERT: "client.pem", METAFORA_ETCD_PASSWORD: "pw" },
      }),
    );
    expect(tls).toContain("etcd.cert (from env METAFORA_ETCD_CERT) needs its pair");
    expect(tls).toContain('etcd.cert = "client.pem" (from env METAFORA_ETCD_CERT): file not found');
    expect(tls).toContain("etcd.password (from env METAFORA_ETCD_PASSWORD) is set without etcd.username");
    expect(tls).not.toContain('"pw"');
  });

  test("a secret's value is never echoed in an error", async () => {
    const msg = await configError(loadConfig({ cwd: folder(`[http]\ntoken = 12345678\n`), env: {} }));
    expect(msg).toContain("http.token = (secret) (from file config/metafora.toml)");
    expect(msg).not.toContain("12345678");
  });

  test("bad endpoints and node names", async () => {
    const msg = await configError(
      loadConfig({ cwd: folder(), env: { METAFORA_ETCD_ENDPOINTS: "h:2379,ftp://x:1,nohost", METAFORA_NODE: "a/b" } }),
    );
    expect(msg).toContain('not valid: "ftp://x:1", "nohost"');
    expect(msg).toContain('node = "a/b" (from env METAFORA_NODE): expected a node name');
  });
});

describe("flags come from raw argv", () => {
  test("values arrive exactly as typed (no numeric conversion), last one wins, -- stops", () => {
    const { values, errors } = configFlagsFromArgv([
      "run",
      "--token",
      "0123",
      "--node=007",
      "--max-tasks",
      "1",
      "--max-tasks",
      "2",
      "--",
      "--http",
      "x",
    ]);
    expect(values).toEqual({ token: "0123", node: "007", "max-tasks": "2" });
    expect(errors).toEqual([]);
  });
  test("a config flag without a value is an error", async () => {
    const { errors } = configFlagsFromArgv(["run", "--lease-ttl", "--node", "a"]);
    expect(errors).toEqual(["flag --lease-ttl needs a value"]);
    const msg = await configError(loadConfig({ cwd: folder(), env: {}, preErrors: errors }));
    expect(msg).toContain("flag --lease-ttl needs a value");
  });
});

describe("redaction and printing", () => {
  test("secrets are replaced, nothing else changes", async () => {
    const config = await loadConfig({
      cwd: folder(),
      env: { METAFORA_TOKEN: "tok-1", METAFORA_ETCD_USERNAME: "u", METAFORA_ETCD_PASSWORD: "pw-1" },
    });
    const red = redactConfig(config);
    expect(red.http.token).toBe("[redacted]");
    expect(red.etcd.password).toBe("[redacted]");
    expect(red.etcd.username).toBe("u");
    expect(config.http.token).toBe("tok-1"); // the original is untouched
    expect(JSON.stringify(red)).not.toMatch(/tok-1|pw-1/);
  });
  test("`metafora config` TOML shows durations in file form and each source", async () => {
    const loaded = await loadConfigWithSources({
      cwd: folder(`[[tasks]]\nid = "hello:1"\nprops = { a = 1 }\n`),
      env: { METAFORA_LEASE_TTL: "3s", METAFORA_TOKEN: "tok-2" },
    });
    const text = renderConfigToml(loaded.config, loaded.sources, loaded.file);
    expect(text).toContain('lease_ttl = "3s"  # env METAFORA_LEASE_TTL');
    expect(text).toContain('shutdown_timeout = "30s"  # default');
    expect(text).toContain('token = "[redacted]"  # env METAFORA_TOKEN');
    expect(text).toContain('id = "hello:1"');
    expect(text).not.toContain("tok-2");
  });
});

describe("the shipped config files", () => {
  const repo = join(import.meta.dir, "..", "..");
  test("config/metafora.toml and examples/etcd.toml load as they are", async () => {
    const dflt = await loadConfig({ cwd: repo, env: {} });
    expect(dflt.coordinator).toBe("embedded");
    expect(dflt.handlers).toBe(join(repo, "handlers"));
    expect(dflt.http.listen).toBe("127.0.0.1:7070");
    const etcd = await loadConfig({ cwd: repo, env: {}, argvFlags: { config: "config/examples/etcd.toml" } });
    expect(etcd.coordinator).toBe("etcd");
    expect(etcd.etcd.endpoints).toEqual(["127.0.0.1:2379"]);
  });
  test("examples/etcd-tls.toml is valid except for the certificate files this machine lacks", async () => {
    const msg = await configError(
      loadConfig({
        cwd: repo,
        env: { METAFORA_ETCD_PASSWORD: "pw" },
        argvFlags: { config: "config/examples/etcd-tls.toml" },
      }),
    );
    const problems = msg.split("\n").slice(1);
    expect(problems.length).toBe(3);
    for (const p of problems)
      expect(p).toMatch(/etcd\.(ca|cert|key) = ".*" \(from file config\/examples\/etcd-tls\.toml\): file not found/);
  });
});

describe("etcd TLS endpoints", () => {
  test("an IP address endpoint with TLS is refused with the reason; a host name is fine", async () => {
    const cwd = folder();
    writeFileSync(
      join(cwd, "ca.pem"),
      "-----BEGIN CERTIFICATE-----\nnot a real one (only the PEM header is checked at load)\n-----END CERTIFICATE-----\n",
    );
    const msg = await configError(
      loadConfig({
        cwd,
        env: { METAFORA_ETCD_ENDPOINTS: "https://127.0.0.1:2379,localhost:2379", METAFORA_ETCD_CA: "ca.pem" },
      }),
    );
    expect(msg).toContain(
      '"https://127.0.0.1:2379" is an IP address; with TLS the runtime (Bun/Deno) cannot send an IP address as the TLS server name',
    );
    expect(msg).not.toContain('"localhost:2379" is');
    const ok = await loadConfig({
      cwd,
      env: { METAFORA_ETCD_ENDPOINTS: "https://localhost:2379", METAFORA_ETCD_CA: "ca.pem" },
    });
    expect(ok.etcd.ca).toBe(join(cwd, "ca.pem"));
    // Without TLS an IP address is fine.
    expect((await loadConfig({ cwd, env: { METAFORA_ETCD_ENDPOINTS: "127.0.0.1:2379" } })).etcd.endpoints).toEqual([
      "127.0.0.1:2379",
    ]);
  });
});
