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
  constructor(
    readonly node: string,
    readonly namespace: string,
  ) {
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
  constructor(
    readonly reason: StopReason,
    readonly taskId: string,
  ) {
    super(`task "${taskId}" stopped: ${reason}`);
  }
}

/**
 * One line for an expected failure (a store unreachable, a timeout): the name unless plain
 * Error, and the first line of the message; no stack. describeError keeps the stack.
 */
export function errorLine(err: unknown): string {
  if (err instanceof Error) return `${err.name === "Error" ? "" : `${err.name}: `}${err.message.split("\n")[0]}`;
  return String(err);
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

/**
 * A write made for a claimed task (state, checkpoint, task command, done) was refused because
 * the claim is no longer this node's: another node may own the task now. The task stops with
 * reason "lost" and nothing was written.
 */
export class ClaimLostError extends MetaforaError {
  override name = "ClaimLostError";
  constructor(
    readonly taskId: string,
    readonly token: number,
    what: string,
  ) {
    super(`task "${taskId}": ${what} refused: the claim with token ${token} is no longer this node's`);
  }
}

/** ctx.checkpoint(value) with a value whose JSON is larger than the checkpoint limit. */
export class CheckpointTooLargeError extends MetaforaError {
  override name = "CheckpointTooLargeError";
  constructor(
    readonly taskId: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(
      `task "${taskId}": checkpoint is ${bytes} bytes of JSON; the checkpoint limit (MAX_CHECKPOINT_BYTES) is ${limit} bytes`,
    );
  }
}
