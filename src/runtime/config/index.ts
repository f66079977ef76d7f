/** Runtime configuration: one entry point for the rest of the runtime (and the CLI). */
export {
  loadConfig,
  loadConfigWithSources,
  defaultNodeName,
  type LoadConfigOptions,
  type LoadedConfig,
} from "./load.ts";
export { configFlagsFromArgv, CONFIG_FLAGS, type ArgvFlags } from "./flags.ts";
export { redactConfig, REDACTED } from "./redact.ts";
export { renderConfigToml } from "./print.ts";
export { parseDuration, formatDuration } from "./duration.ts";
export {
  KEYS,
  describeSource,
  type RuntimeConfig,
  type Source,
  type DeclarativeTask,
  type LogLevel,
  type LogFormat,
  type CoordinatorKind,
} from "./schema.ts";
