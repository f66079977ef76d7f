/**
 * Resource reporters for the ResourceBalancer: how much of a resource this machine uses.
 * Linux numbers come from /proc; elsewhere (or when /proc is unreadable) from node:os.
 */
import { readFileSync } from "node:fs";
import * as os from "node:os";

export interface ResourceUsage {
  readonly used: number;
  readonly total: number;
}

export interface ResourceReporter {
  /** Name for logs, e.g. "memory". */
  readonly name?: string;
  used(): ResourceUsage;
}

/**
 * Parse /proc/meminfo text into used/total kB. Available memory is MemAvailable when the
 * kernel reports it (3.14+), else MemFree + Buffers + Cached. Go's reporter never parsed
 * MemFree (an inverted condition), overstating use; this one reads every field it needs.
 * Returns undefined when MemTotal or the free figures are missing.
 */
export function parseMeminfo(text: string): ResourceUsage | undefined {
  const fields = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)/.exec(line);
    if (m) fields.set(m[1]!, Number(m[2]));
  }
  const total = fields.get("MemTotal");
  if (total === undefined || total <= 0) return undefined;
  let available = fields.get("MemAvailable");
  if (available === undefined) {
    const free = fields.get("MemFree");
    if (free === undefined) return undefined;
    available = free + (fields.get("Buffers") ?? 0) + (fields.get("Cached") ?? 0);
  }
  return { used: Math.max(0, total - Math.min(available, total)), total };
}

/** Memory in use on this machine (kB on Linux, bytes from node:os elsewhere). */
export function memoryReporter(meminfoPath = "/proc/meminfo"): ResourceReporter {
  return {
    name: "memory",
    used() {
      try {
        const parsed = parseMeminfo(readFileSync(meminfoPath, "utf8"));
        if (parsed) return parsed;
      } catch {
        // No /proc (macOS, Windows, a sandbox without read permission): fall back below.
      }
      const total = os.totalmem();
      return { used: total - os.freemem(), total };
    },
  };
}

interface CpuTimes {
  readonly busy: number;
  readonly total: number;
}

/** Parse the aggregate "cpu" line of /proc/stat into busy and total jiffies. */
export function parseProcStat(text: string): CpuTimes | undefined {
  const line = text.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) return undefined;
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  if (values.length < 4 || values.some((v) => !Number.isFinite(v))) return undefined;
  // user nice system idle iowait irq softirq steal [guest guest_nice, already inside user/nice]
  const counted = values.slice(0, 8);
  const total = counted.reduce((a, b) => a + b, 0);
  const idle = (counted[3] ?? 0) + (counted[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * CPU in use, as a percentage of all cores (total = 100). On Linux: busy share of /proc/stat
 * jiffies since the previous call (the first call measures since boot). Elsewhere: the
 * 1-minute load average divided by the core count, capped at 100.
 */
export function cpuReporter(statPath = "/proc/stat"): ResourceReporter {
  let previous: CpuTimes | undefined;
  return {
    name: "cpu",
    used() {
      try {
        const now = parseProcStat(readFileSync(statPath, "utf8"));
        if (now) {
          const busy = now.busy - (previous?.busy ?? 0);
          const total = now.total - (previous?.total ?? 0);
          previous = now;
          if (total > 0) return { used: (busy / total) * 100, total: 100 };
        }
      } catch {
        // fall back to the load average
      }
      const cores = Math.max(1, os.cpus().length);
      const load = os.loadavg()[0] ?? 0;
      return { used: Math.min(100, (load / cores) * 100), total: 100 };
    },
  };
}
