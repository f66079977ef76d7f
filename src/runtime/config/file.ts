/**
 * The config file source: TOML, snake_case keys, tables [http], [log], [etcd] and [[tasks]].
 * Unknown keys are errors (a typo must not silently fall back to a default).
 */
import { readFileSync } from "node:fs";
import { parse as parseToml } from "smol-toml";
import type { Layer } from "./layer.ts";
import { suggest } from "./layer.ts";
import { KEYS, TABLES, type Source } from "./schema.ts";

export interface FileLayerResult {
  layer: Layer;
  /** Problems found while reading (unknown keys, wrong table shapes); validation comes later. */
  errors: string[];
}

/** Read and parse `path` (shown as `shownPath` in messages). Throws only on unreadable/invalid TOML. */
export function readConfigFile(path: string, shownPath: string): FileLayerResult {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read config file ${shownPath}: ${(err as Error).message}`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`config file ${shownPath} is not valid TOML: ${(err as Error).message}`);
  }
  return layerFromDocument(doc, shownPath);
}

/** Flatten a parsed TOML document into a layer, reporting keys the runtime does not know. */
export function layerFromDocument(doc: Record<string, unknown>, shownPath: string): FileLayerResult {
  const source: Source = { kind: "file", path: shownPath };
  const layer: Layer = new Map();
  const errors: string[] = [];
  const known = new Set(KEYS.map((k) => k.key));
  const topLevel = [...KEYS.filter((k) => !k.key.includes(".")).map((k) => k.key), ...TABLES];

  for (const [name, value] of Object.entries(doc)) {
    if ((TABLES as readonly string[]).includes(name)) {
      if (!value || typeof value !== "object" || Array.isArray(value)) {
        errors.push(
          `[${name}] in file ${shownPath} must be a table, e.g. [${name}] on its own line followed by its keys`,
        );
        continue;
      }
      const childKeys = KEYS.filter((k) => k.key.startsWith(`${name}.`)).map((k) => k.key.slice(name.length + 1));
      for (const [child, childValue] of Object.entries(value as Record<string, unknown>)) {
        const full = `${name}.${child}`;
        if (known.has(full)) layer.set(full, { value: childValue, source });
        else
          errors.push(
            unknownKey(
              full,
              shownPath,
              childKeys.map((c) => `${name}.${c}`),
            ),
          );
      }
    } else if (known.has(name)) {
      layer.set(name, { value, source });
    } else {
      errors.push(unknownKey(name, shownPath, topLevel));
    }
  }
  return { layer, errors };
}

function unknownKey(key: string, shownPath: string, allowed: readonly string[]): string {
  const guess = suggest(key, allowed);
  const hint = guess ? ` (did you mean "${guess}"?)` : "";
  return `unknown key "${key}" in file ${shownPath}${hint}; allowed here: ${allowed.join(", ")}`;
}
