/**
 * The etcd key layout, identical to Go Metafora's (docs/wire-format.md). Every key the etcd coordinator,
 * client, state store and commander touch is built here and nowhere else.
 *
 *   N/_metafora                      metadata, on the lease of the last node to start
 *   N/nodes/M/_metafora              node registration marker, on M's lease
 *   N/nodes/M/commands/_metafora     metadata, on M's lease
 *   N/nodes/M/commands/<n>           node command JSON (no lease)
 *   N/tasks/_metafora                metadata, on the lease
 *   N/tasks/T                        task marker ("" from Go's client)
 *   N/tasks/T/props                  task props JSON
 *   N/tasks/T/owner                  {"node":"M"} on the owner's lease: the claim
 *   N/tasks/T/commands               state machine message JSON, single slot
 *   N/tasks/T/checkpoint             a handler's last checkpoint JSON, fenced (no lease;
 *                                    Go nodes ignore it, and their done removes it with tasks/T/)
 *   N/state/T                        state machine state JSON, permanent
 */
import { goJson } from "../../gojson.ts";
import { invalidNodeName, invalidTaskId } from "../../ids.ts";

export const METADATA = "_metafora";

/** Normalise a namespace like Go's NewConfig: trim spaces and slashes, one leading '/', cleaned. */
export function normalizeNamespace(namespace: string): string {
  const trimmed = namespace
    .trim()
    .replace(/^\/+|\/+$/g, "")
    .trim();
  if (trimmed === "")
    throw new Error(`namespace ${JSON.stringify(namespace)} is empty; expected something like "/metafora"`);
  const parts: string[] = [];
  for (const part of trimmed.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  if (parts.length === 0)
    throw new Error(`namespace ${JSON.stringify(namespace)} cleans to "/"; expected a non-root path`);
  return `/${parts.join("/")}`;
}

/** Key builders for one namespace. */
export class Keys {
  readonly ns: string;
  constructor(namespace: string) {
    this.ns = normalizeNamespace(namespace);
  }
  get metadata(): string {
    return `${this.ns}/${METADATA}`;
  }
  get tasksMetadata(): string {
    return `${this.ns}/tasks/${METADATA}`;
  }
  /** Prefix of every task key, with trailing slash. */
  get tasksPrefix(): string {
    return `${this.ns}/tasks/`;
  }
  /** Prefix of every node key, with trailing slash. */
  get nodesPrefix(): string {
    return `${this.ns}/nodes/`;
  }
  /** Prefix of every state key, with trailing slash. */
  get statePrefix(): string {
    return `${this.ns}/state/`;
  }
  task(id: string): string {
    return `${this.ns}/tasks/${id}`;
  }
  /** Everything under a task, with trailing slash: never a prefix of a sibling task (Go's bug). */
  taskChildren(id: string): string {
    return `${this.ns}/tasks/${id}/`;
  }
  props(id: string): string {
    return `${this.ns}/tasks/${id}/props`;
  }
  owner(id: string): string {
    return `${this.ns}/tasks/${id}/owner`;
  }
  taskCommands(id: string): string {
    return `${this.ns}/tasks/${id}/commands`;
  }
  checkpoint(id: string): string {
    return `${this.ns}/tasks/${id}/checkpoint`;
  }
  state(id: string): string {
    return `${this.ns}/state/${id}`;
  }
  node(name: string): string {
    return `${this.ns}/nodes/${name}/${METADATA}`;
  }
  nodeCommandsMetadata(name: string): string {
    return `${this.ns}/nodes/${name}/commands/${METADATA}`;
  }
  /** Prefix of a node's command keys, with trailing slash. */
  nodeCommandsPrefix(name: string): string {
    return `${this.ns}/nodes/${name}/commands/`;
  }

  /**
   * Classify a key under tasks/: which task and which part of it. Returns undefined for keys
   * that are not part of the layout (metadata, deeper paths).
   */
  parseTaskKey(key: string): { id: string; part: "task" | "props" | "owner" | "commands" | "checkpoint" } | undefined {
    // Called for every key of every listing and watch event: indexOf, no split.
    const prefix = this.tasksPrefix;
    if (!key.startsWith(prefix)) return undefined;
    const slash = key.indexOf("/", prefix.length);
    const id = slash < 0 ? key.slice(prefix.length) : key.slice(prefix.length, slash);
    if (!id || id === METADATA) return undefined;
    if (slash < 0) return { id, part: "task" };
    // The part compared in place: no string made for it.
    const rest = key.length - slash - 1;
    for (const part of TASK_PARTS) if (rest === part.length && key.startsWith(part, slash + 1)) return { id, part };
    return undefined;
  }

  /**
   * Classify a key under nodes/: a node's registration marker (`nodes/M/_metafora`) or one of
   * its pending commands (`nodes/M/commands/<n>`). Undefined for anything else.
   */
  parseNodeKey(key: string): { node: string; part: "marker" } | { node: string; part: "command" } | undefined {
    if (!key.startsWith(this.nodesPrefix)) return undefined;
    const segments = key.slice(this.nodesPrefix.length).split("/");
    const node = segments[0];
    if (!node) return undefined;
    if (segments.length === 2 && segments[1] === METADATA) return { node, part: "marker" };
    if (segments.length === 3 && segments[1] === "commands" && segments[2] && segments[2] !== METADATA) {
      return { node, part: "command" };
    }
    return undefined;
  }
}

/** The keys under tasks/T/, owner first (most frequent in watch events). */
const TASK_PARTS = ["owner", "props", "commands", "checkpoint"] as const;

/** Owner value, byte-identical to Go's json.Marshal of {Node string `json:"node"`}. */
export function encodeOwner(node: string): string {
  return goJson({ node });
}

/** Parse an owner value; undefined if it is not {"node": string}. Never throws. */
export function decodeOwner(raw: string): string | undefined {
  try {
    const v: unknown = JSON.parse(raw);
    if (v && typeof v === "object" && typeof (v as { node?: unknown }).node === "string")
      return (v as { node: string }).node;
  } catch {
    // malformed owner values are reported by the caller
  }
  return undefined;
}

/** Go's metadata value: {"host","created","node"}; created is informational (Go time.String()-like). */
export function encodeMetadata(host: string, node: string, created: Date = new Date()): string {
  const iso = created.toISOString(); // 2026-11-22T14:30:01.819Z
  const goLike = `${iso.slice(0, 10)} ${iso.slice(11, 23)} +0000 UTC`;
  return goJson({ host, created: goLike, node });
}

/**
 * A node marker that says the node is not part of the cluster's shares yet or any more: the
 * metadata plus `"joining":true` (registered, still listing the tasks) or `"leaving":true`
 * (its graceful shutdown has begun); docs/wire-format.md. Go reads no field of it; our nodes
 * leave such a node out of fair shares and claim order.
 */
export function encodeStandbyMarker(host: string, node: string, why: "joining" | "leaving"): string {
  return `${encodeMetadata(host, node).slice(0, -1)},"${why}":true}`;
}

/** Whether a node marker's value says the node is joining or leaving. Never throws. */
export function markerSaysStandby(value: string): boolean {
  if (!value.includes('"leaving"') && !value.includes('"joining"')) return false;
  try {
    const v: unknown = JSON.parse(value);
    if (typeof v !== "object" || v === null) return false;
    const m = v as { leaving?: unknown; joining?: unknown };
    return m.leaving === true || m.joining === true;
  } catch {
    return false;
  }
}

/** Why a task id cannot be used, or undefined when it can (the shared rule of src/ids.ts). */
export function invalidTaskIdReason(id: unknown): string | undefined {
  return invalidTaskId(id);
}

/** Why a node name cannot be used, or undefined when it can (the shared rule of src/ids.ts). */
export function invalidNodeNameReason(name: unknown): string | undefined {
  return invalidNodeName(name);
}
