/**
 * The command-line source. Config flags are read from the raw argv rather than from cac's
 * parsed options because cac (mri) turns numeric-looking strings into numbers: a token
 * "0123" or a node name "007" must arrive exactly as typed.
 */
import type { Layer } from "./layer.ts";
import { CONFIG_FLAG, KEYS } from "./schema.ts";

/** Flag names (without dashes) that carry configuration. */
export const CONFIG_FLAGS: readonly string[] = [CONFIG_FLAG, ...KEYS.flatMap((k) => (k.flag ? [k.flag] : []))];

export interface ArgvFlags {
  /** Flag name (without dashes) → raw value; the last occurrence wins. */
  values: Record<string, string>;
  /** Flags given without a value. */
  errors: string[];
}

/** Pick config flags (`--name value` or `--name=value`) out of argv; stops at "--". */
export function configFlagsFromArgv(argv: readonly string[]): ArgvFlags {
  const values: Record<string, string> = {};
  const errors: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") break;
    if (!arg.startsWith("--")) continue;
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (!CONFIG_FLAGS.includes(name)) continue;
    if (eq !== -1) {
      values[name] = arg.slice(eq + 1);
      continue;
    }
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) {
      errors.push(`flag --${name} needs a value`);
      continue;
    }
    values[name] = next;
    i++;
  }
  return { values, errors };
}

export function flagLayer(flags: Readonly<Record<string, string | undefined>>): Layer {
  const layer: Layer = new Map();
  for (const spec of KEYS) {
    if (!spec.flag) continue;
    const value = flags[spec.flag];
    if (value !== undefined) layer.set(spec.key, { value, source: { kind: "flag", name: `--${spec.flag}` } });
  }
  return layer;
}
