/**
 * Why the configured coordinator could not be opened, as one line that names the setting and
 * the path, and the exit code: problems the operator fixes in the configuration or on disk
 * (data_dir is a file, cannot be created or written, is locked, holds a damaged data file)
 * are configuration errors (78); anything else is a plain failure (1).
 */
import { ConfigError } from "../../errors.ts";
import type { RuntimeConfig } from "../config/schema.ts";
import { ExitCode } from "../cli/exit-codes.ts";

const DATA_DIR_HINT = "set data_dir (METAFORA_DATA_DIR, --data-dir) to a folder this user can create and write";

const DATA_DIR_ERRORS: Readonly<Record<string, string>> = {
  EEXIST: "is a file, not a folder",
  ENOTDIR: "has a file where a folder should be in its path",
  EACCES: "cannot be created or written (permission denied)",
  EPERM: "cannot be created or written (operation not permitted)",
  EROFS: "is on a read-only file system",
  ENOSPC: "is on a full disk",
  ENAMETOOLONG: "is too long a path",
  ELOOP: "has a symbolic link loop in its path",
  EISDIR: "holds a folder where a data file should be",
};

export function describeOpenError(config: RuntimeConfig, err: unknown): { message: string; code: number } {
  const message = err instanceof Error ? err.message : String(err);
  // The embedded store names the damaged file and what to do; say which setting it lives under.
  if (config.coordinator === "embedded" && (err as Error)?.name === "StoreDamagedError") {
    return { message: `data_dir ${config.dataDir}: ${message}`, code: ExitCode.config };
  }
  if (err instanceof ConfigError || (err as Error)?.name === "DataDirBusyError") {
    return { message: `cannot open the ${config.coordinator} coordinator: ${message}`, code: ExitCode.config };
  }
  if (config.coordinator === "embedded") {
    const errno = (err as NodeJS.ErrnoException)?.code;
    const what = errno ? DATA_DIR_ERRORS[errno] : undefined;
    if (what) {
      const path = (err as NodeJS.ErrnoException).path;
      const where = path && path !== config.dataDir ? ` (${path})` : "";
      return { message: `data_dir ${config.dataDir} ${what}${where}; ${DATA_DIR_HINT}`, code: ExitCode.config };
    }
    // A damaged data file (the durable map names the file and what to do) is the operator's to fix.
    if (/not valid JSON|not a metafora data file|journal/i.test(message)) {
      return { message: `data_dir ${config.dataDir}: ${message}`, code: ExitCode.config };
    }
  }
  return { message: `cannot open the ${config.coordinator} coordinator: ${message}`, code: ExitCode.failed };
}
