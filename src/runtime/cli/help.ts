/**
 * Help text of one command, and "did you mean" for a mistyped one. cac's own per-command help
 * lists every global config flag under every command; an operator looking up `submit` wants
 * what `submit` does and its own flags, with one line saying the config flags apply too.
 */
import type { CAC, Command } from "cac";
import { suggest } from "../config/layer.ts";

/** Help for `command`: what it does, its usage, its own flags, examples, one global note. */
export function commandHelp(command: Command): string {
  const lines: string[] = [`metafora ${command.rawName}`, "", `  ${command.description}`, ""];
  const flags = command.options.map((o) => [o.rawName, o.description] as const);
  flags.push(["-h, --help", "Show this help"]);
  const width = Math.max(...flags.map(([name]) => name.length));
  lines.push("Options:");
  for (const [name, doc] of flags) lines.push(`  ${name.padEnd(width)}  ${doc}`);
  const examples = command.examples.filter((e): e is string => typeof e === "string");
  if (examples.length > 0) {
    lines.push("", "Examples:");
    for (const e of examples) lines.push(`  ${e}`);
  }
  lines.push(
    "",
    "Every command also takes --config PATH and the config flags (--node, --namespace, --etcd-endpoints, --http, --token, ...),",
    "with env METAFORA_* equivalents; `metafora --help` lists them all.",
    "",
  );
  return lines.join("\n");
}

/** The command a mistyped name most likely meant, if any is close. */
export function suggestCommand(cli: CAC, name: string): string | undefined {
  const names = cli.commands.map((c) => c.name).filter((n) => n !== "");
  return suggest(name, names) ?? names.find((n) => n.startsWith(name) && name.length >= 2);
}

/** One line listing the commands, for the unknown-command error. */
export function commandList(cli: CAC): string {
  return cli.commands
    .map((c) => c.name)
    .filter((n) => n !== "")
    .join(", ");
}
