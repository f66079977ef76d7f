/**
 * JSON encoded byte-for-byte the way Go's encoding/json writes it, for values that Go
 * Metafora compares as bytes (owner values) or that both sides write (commands, state).
 *
 * Differences from JSON.stringify that matter: Go escapes <, > and & as \u003c \u003e \u0026,
 * escapes U+2028 and U+2029, replaces invalid UTF-16 (lone surrogates; invalid UTF-8 in Go)
 * with U+FFFD, and writes map keys sorted. Object keys are sorted only where the caller says
 * the value is a Go map; struct fields keep their declaration order.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function escapeLikeGo(json: string): string {
  return json
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

function sanitize(value: unknown, sortKeys: boolean): unknown {
  if (typeof value === "string") return value.replace(LONE_SURROGATE, "\uFFFD");
  if (Array.isArray(value)) return value.map((v) => sanitize(v, sortKeys));
  if (value !== null && typeof value === "object" && !(value instanceof Date)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (sortKeys) entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries) out[k.replace(LONE_SURROGATE, "\uFFFD")] = sanitize(v, sortKeys);
    return out;
  }
  return value;
}

/** Encode like Go's json.Marshal. `sortKeys` for values Go holds as maps. */
export function goJson(value: unknown, options: { sortKeys?: boolean } = {}): string {
  return escapeLikeGo(JSON.stringify(sanitize(value, options.sortKeys ?? false)));
}
