/**
 * Checkpoints: a handler's JSON progress, stored with its task and fenced by its claim, so the
 * next owner resumes where the last one stopped. Stored as JSON text (etcd `tasks/T/checkpoint`;
 * the embedded coordinator's "checkpoints" map), at most MAX_CHECKPOINT_BYTES.
 */
import { CheckpointTooLargeError } from "./errors.ts";

/** 1 MiB: within etcd's default request limit (1.5 MiB) with room for the transaction around it. */
export const MAX_CHECKPOINT_BYTES = 1024 * 1024;

const encoder = new TextEncoder();

/** JSON text of a checkpoint value; throws a TypeError for non-JSON, CheckpointTooLargeError past the limit. */
export function encodeCheckpoint(taskId: string, value: unknown, limit = MAX_CHECKPOINT_BYTES): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new TypeError(`task "${taskId}": checkpoint value is not JSON-serialisable: ${(err as Error).message}`);
  }
  if (text === undefined)
    throw new TypeError(`task "${taskId}": checkpoint value must be a JSON value, got ${typeof value}`);
  const bytes = text.length <= limit / 3 ? text.length : encoder.encode(text).byteLength;
  if (bytes > limit) throw new CheckpointTooLargeError(taskId, bytes, limit);
  return text;
}

/** Parse stored checkpoint text; undefined (and `onBad` told) when it is not JSON. Never throws. */
export function decodeCheckpoint(text: string | undefined, onBad: (problem: string) => void): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    onBad(`stored checkpoint is not JSON (${(err as Error).message}); starting without it`);
    return undefined;
  }
}
