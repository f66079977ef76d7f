/** Shapes the embedded store reads and writes, and how it is opened. */
import type { TaskProps } from "../../types.ts";

/** A checkpoint as stored: the value as JSON text, the fencing token it was written under. */
export interface CheckpointRecord {
  readonly value: string;
  readonly token: number;
  /** RFC 3339. */
  readonly at: string;
}

export interface StoredTask {
  readonly id: string;
  readonly props: TaskProps;
}
