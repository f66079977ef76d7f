/**
 * Node commands (docs/wire-format.md): wire JSON {"command":name,"parameters":{...}}, parameters omitted
 * when empty, compact like Go. Decoding never throws: a malformed command is reported as such
 * so the consumer can log and drop it instead of crashing (Go panics).
 */
import { goJson } from "./gojson.ts";
import type { NodeCommand } from "./types.ts";

export const freeze = (): NodeCommand => ({ command: "freeze" });
export const unfreeze = (): NodeCommand => ({ command: "unfreeze" });
export const balance = (): NodeCommand => ({ command: "balance" });
export const stopTask = (taskId: string): NodeCommand => ({ command: "stop_task", parameters: { task: taskId } });

/** The built-in command names the consumer acts on. */
export const BUILTIN_COMMANDS = ["freeze", "unfreeze", "balance", "stop_task"] as const;

/** Encode a command exactly as Go's Command.Marshal does. */
export function encodeCommand(cmd: NodeCommand): string {
  const params = cmd.parameters;
  const wire: { command: string; parameters?: Record<string, unknown> } = { command: cmd.command };
  if (params && Object.keys(params).length > 0) wire.parameters = params;
  // Go's parameters field is a map, so its keys come out sorted.
  return goJson(wire, { sortKeys: true });
}

export type DecodedCommand = { ok: true; command: NodeCommand } | { ok: false; error: string };

/** Parse wire bytes into a command; never throws. Unknown names are accepted (the consumer discards them). */
export function decodeCommand(raw: string | Uint8Array): DecodedCommand {
  const text = typeof raw === "string" ? raw : new TextDecoder().decode(raw);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      error: `node command is not JSON (${(err as Error).message}): ${JSON.stringify(text.slice(0, 200))}`,
    };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return { ok: false, error: `node command must be a JSON object, got ${JSON.stringify(text.slice(0, 200))}` };
  }
  const obj = parsed as Record<string, unknown>;
  if (typeof obj.command !== "string" || obj.command === "") {
    return {
      ok: false,
      error: `node command needs a non-empty string "command" field, got ${JSON.stringify(text.slice(0, 200))}`,
    };
  }
  const p = obj.parameters;
  if (p !== undefined && p !== null && (typeof p !== "object" || Array.isArray(p))) {
    return { ok: false, error: `node command "parameters" must be an object, got ${JSON.stringify(p)}` };
  }
  const parameters = p ? (p as Record<string, unknown>) : undefined;
  return {
    ok: true,
    command:
      parameters && Object.keys(parameters).length ? { command: obj.command, parameters } : { command: obj.command },
  };
}
