/**
 * The `metafora` command line (cac): `run`, `config` and `version` here, the operator commands
 * (submit, delete, tasks, nodes, command, pause, resume, sleep, kill, state) from
 * operator-cli.ts. Config flags are global, so every command reads the same configuration.
 */
import { cac, type CAC } from "cac";
import { ConfigError, describeError } from "../../errors.ts";
import { configFlagsFromArgv } from "../config/flags.ts";
import { loadConfigWithSources, type LoadedConfig } from "../config/load.ts";
import { renderConfigToml } from "../config/print.ts";
import { redactConfig } from "../config/redact.ts";
import { KEYS, type RuntimeConfig } from "../config/schema.ts";
import type { Env } from "../config/env.ts";
import { commandHelp, commandList, suggestCommand } from "./help.ts";
import { ExitCode } from "./exit-codes.ts";
import { registerStoreCommands } from "./store-commands.ts";
import { registerOperatorCommands } from "./operator-commands.ts";
import { runtimeName, versionText, VERSION } from "./version.ts";

export interface CliIo {
  /** Arguments after the program (process.argv.slice(2)). */
  args: string[];
  env: Env;
  cwd: string;
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  isTTY?: boolean;
}

export interface Cli {
  readonly cac: CAC;
  /** Parse and run; resolves with the exit code. */
  run(): Promise<number>;
}

export function createCli(io: CliIo): Cli {
  const cli = cac("metafora");
  let exitCode: number = ExitCode.ok;

  const load = (): Promise<LoadedConfig> => {
    const flags = configFlagsFromArgv(io.args);
    return loadConfigWithSources({
      argvFlags: flags.values,
      preErrors: flags.errors,
      env: io.env,
      cwd: io.cwd,
      ...(io.isTTY === undefined ? {} : { isTTY: io.isTTY }),
    });
  };
  const reportConfigError = (err: unknown): number => {
    if (err instanceof ConfigError) {
      io.stderr.write(`metafora: ${err.message}\n`);
      return ExitCode.config;
    }
    io.stderr.write(`metafora: ${describeError(err)}\n`);
    return ExitCode.failed;
  };

  cli.option("--config <path>", "Config file (default config/metafora.toml if it exists; env METAFORA_CONFIG)");
  for (const spec of KEYS) {
    if (!spec.flag) continue;
    cli.option(`--${spec.flag} <value>`, `${spec.doc} (file: ${spec.key}${spec.env ? `, env: ${spec.env}` : ""})`);
  }

  /** The config, or undefined after reporting why it could not be loaded (exit code set). */
  const loadOrReport = async (): Promise<LoadedConfig | undefined> => {
    try {
      return await load();
    } catch (err) {
      exitCode = reportConfigError(err);
      return undefined;
    }
  };

  cli
    .command("run", "Run a node: load the handler folder, join the cluster, run tasks until SIGTERM/SIGINT")
    .example("metafora run --handlers ./handlers")
    .example("METAFORA_ETCD_ENDPOINTS=10.0.0.1:2379 metafora run")
    .action(async () => {
      const loaded = await loadOrReport();
      if (!loaded) return;
      const { runNode } = await import("../run.ts");
      exitCode = await runNode(loaded.config);
    });

  cli
    .command("config", "Print the effective configuration (flags > env > file > defaults), secrets redacted")
    .option("--json", "Print JSON instead of TOML")
    .action(async (flags: { json?: boolean }) => {
      const loaded = await loadOrReport();
      if (!loaded) return;
      if (flags.json) {
        const sources = Object.fromEntries([...loaded.sources].map(([k, s]) => [k, s]));
        io.stdout.write(
          `${JSON.stringify({ config: redactConfig(loaded.config), sources, file: loaded.file ?? null }, null, 2)}\n`,
        );
      } else {
        io.stdout.write(renderConfigToml(loaded.config, loaded.sources, loaded.file));
      }
      exitCode = ExitCode.ok;
    });

  cli
    .command("version", "Print the version")
    .option("--json", "Print JSON")
    .action((flags: { json?: boolean }) => {
      io.stdout.write(versionText(flags.json === true));
      exitCode = ExitCode.ok;
    });

  registerOperatorCommands(cli, {
    loadConfig: async (): Promise<RuntimeConfig> => (await load()).config,
    stdout: io.stdout,
    stderr: io.stderr,
    setExitCode: (code) => (exitCode = code),
  });

  registerStoreCommands(cli, {
    loadConfig: async (): Promise<RuntimeConfig> => (await load()).config,
    stdout: io.stdout,
    stderr: io.stderr,
    setExitCode: (code) => (exitCode = code),
  });

  cli.help();
  // Not cac's version(): its text ("metafora/0.1.0 linux-x64 bun-v26") names Bun's Node-compat
  // version, which confuses more than it tells.
  cli.option("-v, --version", "Print the version");

  return {
    cac: cli,
    async run(): Promise<number> {
      try {
        // cac prints help during parse; per-command help is ours (commandHelp), so take it over.
        const wantsHelp = io.args.includes("--help") || io.args.includes("-h");
        const command = wantsHelp
          ? cli.commands.find((c) => c.name !== "" && c.name === io.args.find((a) => !a.startsWith("-")))
          : undefined;
        if (command) {
          io.stdout.write(commandHelp(command));
          return ExitCode.ok;
        }
        cli.parse(["metafora", "metafora", ...io.args], { run: false });
        if (cli.options.help) return ExitCode.ok; // cac printed it
        if (cli.options.version && (!cli.matchedCommand || cli.matchedCommandName === "version")) {
          io.stdout.write(`metafora ${VERSION} (${runtimeName()})\n`);
          return ExitCode.ok;
        }
        if (!cli.matchedCommand) {
          const name = cli.args[0];
          if (name) {
            const guess = suggestCommand(cli, String(name));
            io.stderr.write(
              `metafora: unknown command "${name}"${guess ? ` (did you mean "${guess}"?)` : ""}; commands: ${commandList(cli)}; see metafora --help\n`,
            );
            return ExitCode.usage;
          }
          io.stderr.write("metafora: a command is required\n\n");
          cli.outputHelp();
          return ExitCode.usage;
        }
        await cli.runMatchedCommand();
        return exitCode;
      } catch (err) {
        // cac's own errors: unknown option, missing argument.
        if (err instanceof Error && err.name === "CACError") {
          io.stderr.write(
            `metafora: ${err.message} (see metafora ${cli.matchedCommandName ?? ""} --help)\n`.replace("  ", " "),
          );
          return ExitCode.usage;
        }
        io.stderr.write(`metafora: ${describeError(err)}\n`);
        return ExitCode.failed;
      }
    },
  };
}
