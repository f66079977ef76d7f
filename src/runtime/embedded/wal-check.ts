/**
 * A look at SQLite's write-ahead log before SQLite opens it. SQLite replays the WAL up to the
 * first frame whose checksum fails and silently ignores the rest: right after a crash that is
 * the torn, never-acknowledged tail, but damage in the middle of the log would silently drop
 * transactions that were acknowledged after it. This reads the WAL format (a 32-byte header,
 * then frames of a 24-byte header plus one page, with cumulative checksums seeded by the
 * header and salts that mark the current generation of the log) and tells those cases apart:
 *
 * - "ok": every frame of the current generation is valid (or there is nothing to replay);
 * - "torn-tail": the current generation ends with invalid frames and nothing valid after them
 *   (a write interrupted by a crash; nothing acknowledged is lost, unless the damage hit the
 *   very last frame, which is then indistinguishable: reported as a warning);
 * - "damaged": a committed frame of the current generation follows an invalid one, or the
 *   header itself is broken while frames follow: acknowledged transactions would be dropped.
 */
import { existsSync, readFileSync } from "node:fs";

export type WalVerdict =
  | { readonly kind: "absent" }
  | { readonly kind: "ok"; readonly frames: number }
  | { readonly kind: "torn-tail"; readonly validFrames: number; readonly ignoredBytes: number }
  | { readonly kind: "damaged"; readonly problem: string };

const HEADER = 32;
const FRAME_HEADER = 24;

export function checkWal(path: string): WalVerdict {
  if (!existsSync(path)) return { kind: "absent" };
  const buf = readFileSync(path);
  if (buf.length === 0) return { kind: "ok", frames: 0 };
  if (buf.length < HEADER)
    return { kind: "damaged", problem: `is ${buf.length} bytes, shorter than a WAL header (${HEADER})` };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0);
  if (magic !== 0x377f0682 && magic !== 0x377f0683) {
    return buf.length > HEADER
      ? { kind: "damaged", problem: `has no valid WAL header (magic 0x${magic.toString(16)})` }
      : { kind: "ok", frames: 0 };
  }
  const bigEndian = magic === 0x377f0683;
  const pageSize = view.getUint32(8);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0)
    return { kind: "damaged", problem: `has an invalid page size ${pageSize} in its header` };
  const salt1 = view.getUint32(16);
  const salt2 = view.getUint32(20);
  let [s0, s1] = checksum(view, 0, 24, 0, 0, bigEndian);
  if (s0 !== view.getUint32(24) || s1 !== view.getUint32(28)) {
    return buf.length > HEADER
      ? { kind: "damaged", problem: "has a WAL header whose checksum does not match (its frames would all be ignored)" }
      : { kind: "ok", frames: 0 };
  }
  const frameSize = FRAME_HEADER + pageSize;
  const frameCount = Math.floor((buf.length - HEADER) / frameSize);
  let valid = 0;
  let firstInvalid = -1;
  for (let i = 0; i < frameCount; i++) {
    const off = HEADER + i * frameSize;
    const sameGeneration = view.getUint32(off + 8) === salt1 && view.getUint32(off + 12) === salt2;
    if (firstInvalid < 0) {
      if (!sameGeneration) break; // an older generation's leftovers: the log ends here
      [s0, s1] = checksum(view, off, 8, s0, s1, bigEndian);
      [s0, s1] = checksum(view, off + FRAME_HEADER, pageSize, s0, s1, bigEndian);
      if (s0 === view.getUint32(off + 16) && s1 === view.getUint32(off + 20)) {
        valid++;
        continue;
      }
      firstInvalid = i;
      continue;
    }
    // After an invalid frame: a commit frame of the same generation means committed work follows.
    const isCommit = view.getUint32(off + 4) !== 0;
    if (sameGeneration && isCommit) {
      return {
        kind: "damaged",
        problem: `frame ${firstInvalid + 1} of ${frameCount} is damaged and committed frames follow it (SQLite would silently drop them)`,
      };
    }
  }
  // Bytes after the last whole frame: a frame whose write was cut short.
  const partial = (buf.length - HEADER) % frameSize !== 0 && (firstInvalid < 0 ? valid === frameCount : true);
  if (firstInvalid < 0 && !partial) return { kind: "ok", frames: valid };
  return { kind: "torn-tail", validFrames: valid, ignoredBytes: buf.length - HEADER - valid * frameSize };
}

/** SQLite's WAL checksum over `len` bytes (a multiple of 8) at `off`, continuing from s0, s1. */
function checksum(
  view: DataView,
  off: number,
  len: number,
  s0: number,
  s1: number,
  bigEndian: boolean,
): [number, number] {
  const le = !bigEndian;
  for (let i = off; i < off + len; i += 8) {
    s0 = (s0 + view.getUint32(i, le) + s1) >>> 0;
    s1 = (s1 + view.getUint32(i + 4, le) + s0) >>> 0;
  }
  return [s0, s1];
}
