/**
 * Bad input at start-up, as an operator would type it: the config file, env vars, flags,
 * handler modules and the embedded data dir. Every case runs the compiled binary and asserts
 * the exit code, that the message names the setting (or file) and what is expected, that no
 * stack trace is shown, and (for the whole table) that the data dir of a real node, which
 * every failing `run` points at, is byte-for-byte unchanged.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  bounded,
  expectMentions,
  expectNoStack,
  fingerprint,
  makeWorkspace,
  metaforaBinary,
  runCli,
  startNode,
  type CliResult,
  type Workspace,
} from "./support.ts";

const GOOD_HANDLER = `export default { async run(task, ctx) { await new Promise((r) => ctx.signal.addEventListener("abort", r)); return "release"; } };`;
const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

interface StartCase {
  name: string;
  /** argv; "$DATA" is replaced with the sentinel data dir. */
  args: string[];
  env?: Record<string, string>;
  config?: string;
  handlers?: Record<string, string>;
  files?: Record<string, string>;
  code: number;
  mentions: (string | RegExp)[];
}

const run = (...extra: string[]): string[] => ["run", "--http", "off", "--data-dir", "$DATA", ...extra];

const CASES: StartCase[] = [
  // ---- config file
  {
    name: "file: unknown key",
    config: 'leese_ttl = "10s"\n',
    args: run(),
    code: 78,
    mentions: ['"leese_ttl"', 'did you mean "lease_ttl"', "config/metafora.toml"],
  },
  { name: "file: TOML syntax error", config: "node = \n", args: run(), code: 78, mentions: ["config/metafora.toml"] },
  {
    name: "file: wrong type for max_tasks",
    config: 'max_tasks = "many"\n',
    args: run(),
    code: 78,
    mentions: ["max_tasks", "expected a whole number"],
  },
  {
    name: "file: unknown table",
    config: '[htp]\nlisten = "x"\n',
    args: run(),
    code: 78,
    mentions: ['"htp"', "allowed"],
  },
  {
    name: "file: declarative task id with '/'",
    config: '[[tasks]]\nid = "a/b"\n',
    args: run(),
    code: 78,
    mentions: ["tasks[0].id", "must not contain '/'", "expected a task id"],
  },
  {
    name: "file: declarative task id '..'",
    config: '[[tasks]]\nid = ".."\n',
    args: run(),
    code: 78,
    mentions: ["tasks[0].id", "reserved"],
  },
  {
    name: "file: declarative task with unknown field",
    config: '[[tasks]]\nid = "x:1"\nprop = 1\n',
    args: run(),
    code: 78,
    mentions: ["tasks[0]", "prop"],
  },
  {
    name: "file: release_backoff_max below release_backoff",
    config: 'release_backoff = "10s"\nrelease_backoff_max = "1s"\n',
    args: run(),
    code: 78,
    mentions: ["release_backoff_max", "release_backoff", "expected release_backoff_max >= release_backoff"],
  },
  {
    name: "file: --config names a missing file",
    args: run("--config", "nope.toml"),
    code: 78,
    mentions: ["nope.toml", "does not exist"],
  },
  // ---- env
  {
    name: "env: misspelt variable",
    env: { METAFORA_TOKN: "x" },
    args: run(),
    code: 78,
    mentions: ["METAFORA_TOKN", "did you mean METAFORA_TOKEN"],
  },
  {
    name: "env: node name with '/'",
    env: { METAFORA_NODE: "a/b" },
    args: run(),
    code: 78,
    mentions: ["node", "METAFORA_NODE", "must not contain '/'", "expected a node name"],
  },
  {
    name: "env: node name with edge spaces",
    env: { METAFORA_NODE: " n1" },
    args: run(),
    code: 78,
    mentions: ["METAFORA_NODE", "white space"],
  },
  {
    name: "env: node name '.'",
    env: { METAFORA_NODE: "." },
    args: run(),
    code: 78,
    mentions: ["METAFORA_NODE", "reserved"],
  },
  {
    name: "env: lease TTL not whole seconds",
    env: { METAFORA_LEASE_TTL: "1500ms" },
    args: run(),
    code: 78,
    mentions: ["lease_ttl", "METAFORA_LEASE_TTL", "whole seconds"],
  },
  {
    name: "env: quick_release not a duration",
    env: { METAFORA_QUICK_RELEASE: "soon" },
    args: run(),
    code: 78,
    mentions: ["quick_release", "METAFORA_QUICK_RELEASE", "a duration with a unit"],
  },
  {
    name: "env: etcd endpoint with a bad scheme",
    env: { METAFORA_ETCD_ENDPOINTS: "ftp://x:1" },
    args: run(),
    code: 78,
    mentions: ["etcd.endpoints", '"ftp://x:1"', "expected etcd endpoints"],
  },
  {
    name: "env: handler load timeout of 0",
    env: { METAFORA_HANDLER_LOAD_TIMEOUT: "0s" },
    args: run(),
    code: 78,
    mentions: ["handler_load_timeout", "expected at least"],
  },
  // ---- flags
  {
    name: "flag: negative max tasks",
    args: run("--max-tasks=-1"),
    code: 78,
    mentions: ["max_tasks", "--max-tasks", "expected a whole number"],
  },
  // A malformed command line is a usage error (2), not a configuration one.
  {
    name: "flag: given without a value",
    args: run("--lease-ttl"),
    code: 2,
    mentions: ["--lease-ttl", "value is missing", "run --help"],
  },
  {
    name: "flag: bad listen address",
    args: ["run", "--data-dir", "$DATA", "--http", "everywhere"],
    code: 78,
    mentions: ["http.listen", "--http", 'expected "host:port"'],
  },
  {
    name: "flag: unknown log level",
    args: run("--log-level", "verbose"),
    code: 78,
    mentions: ["log.level", '"debug", "info", "warn", "error"'],
  },
  {
    name: "flag: CA file that is not PEM",
    files: { "ca.pem": "garbage" },
    args: run("--etcd-endpoints", "localhost:2379", "--etcd-ca", "ca.pem"),
    code: 78,
    mentions: ["etcd.ca", '"ca.pem"', "PEM certificate"],
  },
  {
    name: "flag: key and certificate swapped",
    files: { "c.pem": CERT, "k.pem": CERT },
    args: run("--etcd-endpoints", "localhost:2379", "--etcd-cert", "c.pem", "--etcd-key", "k.pem"),
    code: 78,
    mentions: ["etcd.key", '"k.pem"', "PEM private key", "swapped with etcd.cert"],
  },
  {
    name: "flag: empty CA file",
    files: { "ca.pem": "" },
    args: run("--etcd-endpoints", "localhost:2379", "--etcd-ca", "ca.pem"),
    code: 78,
    mentions: ["etcd.ca", "is empty"],
  },
  {
    name: "flag: certificate without its key",
    files: { "c.pem": CERT },
    args: run("--etcd-endpoints", "localhost:2379", "--etcd-cert", "c.pem"),
    code: 78,
    mentions: ["etcd.cert", "needs its pair"],
  },
  {
    name: "flag: TLS to an IP endpoint",
    files: { "ca.pem": CERT },
    args: run("--etcd-endpoints", "https://127.0.0.1:2379", "--etcd-ca", "ca.pem"),
    code: 78,
    mentions: ["etcd.endpoints", "is an IP address", "host name"],
  },
  // ---- handler modules
  {
    name: "handler: syntax error",
    handlers: { "broken.ts": "export default {" },
    args: run(),
    code: 78,
    mentions: ["broken.ts", "syntax error"],
  },
  {
    name: "handler: no default export",
    handlers: { "nodefault.ts": "export const run = () => 'done';" },
    args: run(),
    code: 78,
    mentions: ["nodefault.ts", "no default export", "expected `export default"],
  },
  {
    name: "handler: top-level await that never settles",
    handlers: { "hang.ts": "await new Promise(() => {});\nexport default () => 'done';" },
    args: run("--handler-load-timeout", "300ms"),
    code: 78,
    mentions: ["hang.ts", "did not finish loading within 300 ms", "handler_load_timeout"],
  },
  {
    name: "handler: misspelt field",
    handlers: { "typo.ts": "export default { run() {}, statefull: true };" },
    args: run(),
    code: 78,
    mentions: ["typo.ts", 'unknown field "statefull"', "allowed: name, run, stateful, errorPolicy"],
  },
  {
    name: "handler: two files with one name",
    handlers: {
      "a.ts": "export default { name: 'twin', run() {} };",
      "b.ts": "export default { name: 'twin', run() {} };",
    },
    args: run(),
    code: 78,
    mentions: ['duplicate handler name "twin"', "a.ts", "b.ts"],
  },
  {
    name: "handler: throws at import",
    handlers: { "boom.ts": "throw new Error('boom at import');" },
    args: run(),
    code: 78,
    mentions: ["boom.ts", "boom at import"],
  },
  {
    name: "handler: name with '/'",
    handlers: { "slash.ts": "export default { name: 'a/b', run() {} };" },
    args: run(),
    code: 78,
    mentions: ["slash.ts", "name must not contain '/'"],
  },
  {
    name: "handler: folder missing",
    args: run("--handlers", "no-such-folder"),
    code: 78,
    mentions: ["no-such-folder", "cannot be read", "METAFORA_HANDLERS"],
  },
  // ---- data dir (these point at their own data dir, not the sentinel)
  {
    name: "data dir: is a file",
    files: { afile: "x" },
    args: ["run", "--http", "off", "--data-dir", "afile"],
    code: 78,
    mentions: ["data_dir", "afile", "is a file, not a folder", "METAFORA_DATA_DIR"],
  },
  {
    name: "data dir: below a file",
    files: { afile: "x" },
    args: ["run", "--http", "off", "--data-dir", "afile/sub"],
    code: 78,
    mentions: ["data_dir", "afile/sub", "has a file where a folder should be"],
  },
  {
    name: "data dir: damaged snapshot file",
    files: { "dd/tasks.snapshot.json": "{not json" },
    args: ["run", "--http", "off", "--data-dir", "dd"],
    code: 78,
    mentions: ["data_dir", "tasks.snapshot.json", "not valid JSON"],
  },
  {
    name: "data dir: a foreign JSON file",
    files: { "dd/tasks.snapshot.json": '{"hello":1}' },
    args: ["run", "--http", "off", "--data-dir", "dd"],
    code: 78,
    mentions: ["tasks.snapshot.json", "not a metafora data file"],
  },
  // ---- CLI arguments (no node needed: they fail before connecting)
  {
    name: "cli: mistyped command",
    args: ["sbumit", "x:1"],
    code: 2,
    mentions: ['unknown command "sbumit"', 'did you mean "submit"'],
  },
  { name: "cli: submit without an id", args: ["submit"], code: 2, mentions: ["id", "submit"] },
  {
    name: "cli: props not an object",
    args: ["submit", "x:1", "--props", "[1]"],
    code: 2,
    mentions: ["--props", "must be a JSON object"],
  },
  { name: "cli: props not JSON", args: ["submit", "x:1", "--props", "{bad"], code: 2, mentions: ["--props", "JSON"] },
  {
    name: "cli: props from a missing file",
    args: ["submit", "x:1", "--props", "@missing.json"],
    code: 2,
    mentions: ["@missing.json", "ENOENT", "expected a file holding a JSON object"],
  },
  {
    name: "cli: props file that is not JSON",
    files: { "p.json": "nope" },
    args: ["submit", "x:1", "--props", "@p.json"],
    code: 2,
    mentions: ["--props (from p.json)", "JSON object"],
  },
  { name: "cli: task id '..'", args: ["submit", ".."], code: 2, mentions: ["reserved", "expected a task id"] },
  {
    name: "cli: task id with a control character",
    args: ["submit", "a\tb"],
    code: 2,
    mentions: ["control characters", "expected a task id"],
  },
  { name: "cli: task id with '/'", args: ["delete", "a/b"], code: 2, mentions: ["must not contain '/'"] },
  {
    name: "cli: stop-task without --task",
    args: ["command", "n1", "stop-task"],
    code: 2,
    mentions: ["stop-task needs --task"],
  },
  {
    name: "cli: unknown node command",
    args: ["command", "n1", "explode"],
    code: 2,
    mentions: ["command must be one of", '"explode"'],
  },
  {
    name: "cli: sleep until nonsense",
    args: ["sleep", "x:1", "soon"],
    code: 2,
    mentions: ["until must be an RFC 3339 time", '"soon"'],
  },
  { name: "cli: extra argument", args: ["tasks", "extra"], code: 2, mentions: ["extra", "tasks --help"] },
  { name: "cli: state with two ids", args: ["state", "a", "b"], code: 2, mentions: ["state reset <id>"] },
];

let binary: string;
let sentinel: Workspace;
let sentinelData: string;
let before: string;
const workspaces: Workspace[] = [];

beforeAll(async () => {
  binary = await metaforaBinary();
  // A real node's data dir with a task in it; every failing `run` below points at it.
  sentinel = makeWorkspace({ "keep.ts": GOOD_HANDLER });
  sentinel.writeConfig('[[tasks]]\nid = "keep:1"\n[tasks.props]\nsize = 1\n');
  sentinelData = join(sentinel.dir, "data");
  const node = startNode(binary, { cwd: sentinel.dir, args: ["--http", "off", "--data-dir", sentinelData] });
  await node.waitOutput("declarative tasks: 1 submitted", 30_000);
  node.signal("SIGTERM");
  expect((await node.exited).code).toBe(0);
  before = fingerprint(sentinelData);
}, 240_000);

afterAll(() => {
  for (const ws of workspaces) ws.remove();
  sentinel?.remove();
});

describe("bad input at start-up and on the command line", () => {
  let results: CliResult[] = [];

  test(`${CASES.length} cases run (the table below checks each)`, async () => {
    results = await bounded(CASES, 3, async (c) => {
      const ws = makeWorkspace({ "good.ts": GOOD_HANDLER, ...(c.handlers ?? {}) });
      workspaces.push(ws);
      if (c.config) ws.writeConfig(c.config);
      for (const [file, text] of Object.entries(c.files ?? {})) {
        mkdirSync(join(ws.dir, file, ".."), { recursive: true });
        writeFileSync(join(ws.dir, file), text);
      }
      const args = c.args.map((a) => (a === "$DATA" ? sentinelData : a));
      return runCli(binary, args, {
        cwd: ws.dir,
        env: { METAFORA_LOG_FORMAT: "pretty", ...(c.env ?? {}) },
        timeout: 30_000,
      });
    });
    expect(results.length).toBe(CASES.length);
  }, 240_000);

  CASES.forEach((c, i) => {
    test(c.name, () => {
      const r = results[i];
      if (!r) throw new Error("the table did not run");
      const text = r.stdout + r.stderr;
      expect(r.code, `${c.name}: exit code; output:\n${text}`).toBe(c.code);
      expectMentions(text, c.mentions, c.name);
      expectNoStack(text, c.name);
    });
  });

  test("the real node's data dir is unchanged by every failed command", () => {
    expect(fingerprint(sentinelData)).toBe(before);
  });
});
