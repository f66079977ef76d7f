/**
 * One node per data dir: two embedded nodes writing the same journal would corrupt it. The lock
 * is a file holding the owner's pid, created exclusively. A lock left by a process that no
 * longer exists (kill -9, power loss) is taken over; so is one naming our own pid, which
 * happens when a container restarts and the runtime is pid 1 again.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

export class DataDirBusyError extends Error {
  override name = "DataDirBusyError";
}

export interface DataDirLock {
  release(): void;
}

export function lockDataDir(dir: string): DataDirLock {
  const path = join(dir, "lock");
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          rmSync(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number.parseInt(readFileSafe(path), 10);
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
      throw new DataDirBusyError(
        `data dir ${dir} is in use by another metafora process (pid ${holder}); stop it or choose another data_dir (METAFORA_DATA_DIR)`,
      );
    }
    rmSync(path, { force: true }); // stale: its owner is gone
  }
  throw new DataDirBusyError(`could not lock data dir ${dir}: the lock file ${path} keeps reappearing`);
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  // A process killed with -9 stays a zombie until its parent reaps it (in containers whose
  // init does not reap, for a while); signal 0 still reaches it, but it holds nothing.
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) S ...": the state follows the last ')' (comm may contain spaces or parens).
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return false; // no /proc (not Linux): trust signal 0
  }
}
