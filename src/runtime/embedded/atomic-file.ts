/** Whole-file replacement that a crash cannot leave half-written (the store's marker file). */
import { Buffer } from "node:buffer";
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";

/** Replace `path` with `text` so that a reader sees either the old or the new file, never a mix. */
export function writeFileAtomic(path: string, text: string, sync = true): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    writeAll(fd, text);
    if (sync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  if (sync) fsyncDir(join(path, ".."));
}

/** writeSync may write less than asked; loop until every byte is down. */
export function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
}

function fsyncDir(dir: string): void {
  // Makes the rename itself durable. Some platforms refuse fsync on a directory: then the
  // rename is as durable as the OS makes it, which is the best available.
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // not supported here
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
