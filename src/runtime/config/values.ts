/**
 * Leaf validators of the configuration (zod): durations, switches, counts, names, addresses.
 * Values from env vars and flags are always strings and values from the TOML file have TOML
 * types; each validator accepts both where that is unambiguous. schema.ts builds its KEYS table
 * from these.
 */
import { z } from "zod";
import { normalizeNamespace } from "../../coordinators/etcd/keys.ts";
import { nameExpectation, nameProblem, type NameKind } from "../../ids.ts";
import { parseDuration } from "./duration.ts";

export interface DeclarativeTask {
  id: string;
  handler?: string;
  props?: Record<string, unknown>;
}

// ---- leaf validators --------------------------------------------------------------------
// Values from env vars and flags are always strings; values from the TOML file have TOML
// types. Each validator accepts both where that is unambiguous (e.g. "5" for a count).

export const DURATION_HINT = 'a duration with a unit, such as "500ms", "10s", "1m30s" or "2h"';

export function duration(min = 0): z.ZodType<number> {
  return z.string({ error: `expected ${DURATION_HINT}` }).transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.issues.push({ code: "custom", message: `expected ${DURATION_HINT}`, input: text });
      return z.NEVER;
    }
    if (ms < min) {
      ctx.issues.push({ code: "custom", message: `expected at least ${min}ms`, input: text });
      return z.NEVER;
    }
    return ms;
  });
}

/** Lease TTL: etcd grants whole seconds, so the duration must be whole seconds, at least 1 s. */
export const leaseTtlSeconds: z.ZodType<number> = z
  .string({ error: `expected ${DURATION_HINT} in whole seconds, e.g. "10s"` })
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined || ms < 1000 || ms % 1000 !== 0) {
      ctx.issues.push({ code: "custom", message: `expected whole seconds, at least "1s", e.g. "10s"`, input: text });
      return z.NEVER;
    }
    return ms / 1000;
  });

export const SWITCH_HINT = 'expected true or false ("on"/"off" and "1"/"0" work too)';
export const onOff: z.ZodType<boolean> = z.preprocess(
  (v) => {
    if (typeof v !== "string") return v;
    const t = v.trim().toLowerCase();
    return t === "true" || t === "on" || t === "1" ? true : t === "false" || t === "off" || t === "0" ? false : v;
  },
  z.boolean({ error: SWITCH_HINT }),
);

export const FRACTION_HINT = "expected a fraction from 0 to 1, e.g. 0.05";
export const fraction: z.ZodType<number> = z.preprocess(
  (v) => (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : v),
  z.number({ error: FRACTION_HINT }).min(0, { error: FRACTION_HINT }).max(1, { error: FRACTION_HINT }),
);

export const STEPS_HINT = "expected a whole number >= 1";
export const steps: z.ZodType<number> = z.preprocess(
  (v) => (typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
  z.number({ error: STEPS_HINT }).int({ error: STEPS_HINT }).min(1, { error: STEPS_HINT }),
);

export const COUNT_HINT = "expected a whole number >= 0 (0 = unlimited)";
export const count: z.ZodType<number> = z.preprocess(
  (v) => (typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
  z.number({ error: COUNT_HINT }).int({ error: COUNT_HINT }).min(0, { error: COUNT_HINT }),
);

export function nonEmpty(what: string): z.ZodType<string> {
  return z
    .string({ error: `expected ${what}` })
    .trim()
    .min(1, { error: `expected ${what}, not an empty string` });
}

export function oneOf<T extends string>(values: readonly [T, ...T[]]): z.ZodType<T> {
  const allowed = values.map((v) => `"${v}"`).join(", ");
  return z.enum(values, { error: () => `expected one of ${allowed}` }) as unknown as z.ZodType<T>;
}

/** Node names and task ids follow the one rule of src/ids.ts, as everywhere else. */
export function sharedName(kind: NameKind): z.ZodType<string> {
  return z.string({ error: `expected ${nameExpectation(kind)}` }).superRefine((v, ctx) => {
    const problem = nameProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: `expected ${nameExpectation(kind)}; this one ${problem}` });
  });
}
export const nodeName = sharedName("node name");

export const namespace: z.ZodType<string> = z
  .string({ error: 'expected a key prefix such as "/metafora"' })
  .transform((text, ctx) => {
    try {
      return normalizeNamespace(text);
    } catch (err) {
      ctx.issues.push({ code: "custom", message: (err as Error).message, input: text });
      return z.NEVER;
    }
  });

export const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
export function validPort(p: string): boolean {
  const n = Number(p);
  return Number.isInteger(n) && n >= 0 && n <= 65535;
}

export const LISTEN_HINT = 'expected "host:port" (e.g. "127.0.0.1:7070"; port 0 picks a free one) or "off"';
export const listen: z.ZodType<string> = z.string({ error: LISTEN_HINT }).transform((text, ctx) => {
  const v = text.trim();
  if (v === "off") return v;
  const m = HOST_PORT.exec(v);
  if (!m || !validPort(m[2]!)) {
    ctx.issues.push({ code: "custom", message: LISTEN_HINT, input: text });
    return z.NEVER;
  }
  return v;
});

export const ENDPOINT_HINT =
  'expected etcd endpoints: "host:port" or "http(s)://host:port", comma-separated in env/flags or a TOML array';
export function validEndpoint(e: string): boolean {
  const m = /^(?:https?:\/\/)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/?$/.exec(e);
  return !!m && validPort(m[2]!) && Number(m[2]) > 0;
}
export const endpoints: z.ZodType<string[]> = z
  .union([z.string(), z.array(z.string())], { error: ENDPOINT_HINT })
  .transform((raw, ctx) => {
    const list = (Array.isArray(raw) ? raw : raw.split(",")).map((e) => e.trim()).filter((e) => e !== "");
    const bad = list.filter((e) => !validEndpoint(e));
    if (bad.length > 0) {
      ctx.issues.push({
        code: "custom",
        message: `${ENDPOINT_HINT}; not valid: ${bad.map((b) => JSON.stringify(b)).join(", ")}`,
        input: raw,
      });
      return z.NEVER;
    }
    return list;
  });

export const taskId = sharedName("task id");

export const declarativeTasks: z.ZodType<DeclarativeTask[]> = z.array(
  z.strictObject(
    {
      id: taskId,
      handler: nonEmpty("a handler name").optional(),
      props: z.record(z.string(), z.unknown(), { error: "expected a table of task properties" }).optional(),
    },
    { error: "expected a [[tasks]] table with id, and optionally handler and props" },
  ),
  { error: "expected an array of [[tasks]] tables" },
);
