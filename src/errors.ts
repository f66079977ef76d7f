/** Error classes users can match with instanceof. */
import type { StopReason } from "./types.ts";

export class MetaforaError extends Error {
  override name = "MetaforaError";
}

/** submitTask of an id that already exists. */
export class TaskExistsError extends MetaforaError {
  override name = "TaskExistsError";
  constructor(readonly taskId: string) {
    super(`task "${taskId}" already exists`);
  }
}

/** A node name already registered and live in the namespace. */
export class NodeNameTakenError extends MetaforaError {
  override name = "NodeNameTakenError";
  constructor(readonly node: string, readonly namespace: string) {
    super(`node name "${node}" is already live in namespace "${namespace}"; pick another name or stop that node`);
  }
}

/** Bad configuration value: names the key, where it came from and what is allowed. */
export class ConfigError extends MetaforaError {
  override name = "ConfigError";
}

/** The abort reason handed to handlers through ctx.signal.reason. */
export class StopError extends MetaforaError {
  override name = "StopError";
  constructor(readonly reason: StopReason, readonly taskId: string) {
    super(`task "${taskId}" stopped: ${reason}`);
  }
}

/** Reason text of a thrown value, with the stack when there is one. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  try {
    return typeof err === "string" ? err : JSON.stringify(err);
  } catch {
    return String(err);
  }
}
