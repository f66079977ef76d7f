/**
 * The data dir's memory of its database, kept next to it in `store.json`: the id of the
 * database this data dir holds, and whether a node had it open. It is what lets a start tell
 * "a new data dir" from "a data dir whose database was deleted" (refused, never a quiet start
 * with nothing), and "closed cleanly" from "crashed, so the WAL holds acknowledged commits"
 * (a missing WAL is then refused).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "./atomic-file.ts";
import { StoreDamagedError } from "./store-errors.ts";

export const MARKER_FILE = "store.json";

export interface StoreMarker {
  readonly format: "metafora-store";
  /** The database file's name inside the data dir. */
  readonly database: string;
  /** Same value as the database's meta `store_id`. */
  readonly id: string;
  readonly createdAt: string;
  /** True while a node has the database open; false after a clean close. */
  readonly open: boolean;
}

export function markerPath(dataDir: string): string {
  return join(dataDir, MARKER_FILE);
}

export function readMarker(dataDir: string): StoreMarker | undefined {
  const path = markerPath(dataDir);
  if (!existsSync(path)) return undefined;
  let parsed: Partial<StoreMarker>;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<StoreMarker>;
  } catch (err) {
    throw new StoreDamagedError(
      path,
      `is not valid JSON (${(err as Error).message})`,
      `it records which database this data dir holds; restore it, or remove it if ${join(dataDir, "metafora.db")} is the right database`,
    );
  }
  if (parsed.format !== "metafora-store" || typeof parsed.id !== "string" || typeof parsed.database !== "string") {
    throw new StoreDamagedError(
      path,
      `is not a metafora store marker (expected {"format":"metafora-store","id":…})`,
      "restore it, or remove it if the database next to it is the right one",
    );
  }
  return parsed as StoreMarker;
}

export function writeMarker(dataDir: string, marker: StoreMarker): void {
  writeFileAtomic(markerPath(dataDir), `${JSON.stringify(marker, null, 2)}\n`);
}
