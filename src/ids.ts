/**
 * The one rule for task ids and node names, used by every coordinator, the CLI and the HTTP
 * API, so an id that one of them accepts can be read, listed and deleted through all of them.
 *
 * Both become one segment of an etcd key (`tasks/<id>`, `nodes/<name>`), a URL path segment
 * and a CLI argument. So a name is:
 *   - a string of 1 to 1024 bytes (UTF-8),
 *   - without '/',
 *   - not ".", ".." (path segments that URLs and tools collapse) or "_metafora" (the key that
 *     holds a node's metadata),
 *   - without control characters (U+0000–U+001F, U+007F–U+009F) or lone surrogates,
 *   - without leading or trailing white space (invisible in tables, lost by shells).
 * Anything else printable is allowed: "report:42", "batch:nightly", "node-1@host", "résumé".
 */

export const MAX_NAME_BYTES = 1024;
export const RESERVED_NAMES: readonly string[] = [".", "..", "_metafora"];

export type NameKind = "task id" | "node name";

/** What is allowed, in one phrase, for error messages and docs. */
export const NAME_RULE = `1 to ${MAX_NAME_BYTES} bytes, no '/', no control characters, no leading or trailing spaces, not ".", ".." or "_metafora"`;

const encoder = new TextEncoder();

/** What a task id / node name must look like, for messages: 'a task id such as "report:42" (…)'. */
export function nameExpectation(kind: NameKind): string {
  return `${kind === "task id" ? 'a task id such as "report:42"' : 'a node name such as "node-1"'} (${NAME_RULE})`;
}

/**
 * What is wrong with `value` as a name, as a predicate ("must not contain '/' (got "a/b")"),
 * or undefined when it is fine. Never throws.
 */
export function nameProblem(value: unknown): string | undefined {
  if (typeof value !== "string") return `must be a non-empty string, got ${value === null ? "null" : typeof value}`;
  if (value === "") return "must be a non-empty string, got an empty one";
  const got = `(got ${show(value)})`;
  if (value.includes("/")) return `must not contain '/' ${got}`;
  if (RESERVED_NAMES.includes(value)) return `is reserved ${got}`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this looks for
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) return `must not contain control characters ${got}`;
  if (/^\s|\s$/.test(value)) return `must not have leading or trailing white space ${got}`;
  if (hasLoneSurrogate(value)) return `is not valid Unicode (a lone surrogate) ${got}`;
  const bytes = encoder.encode(value).length;
  if (bytes > MAX_NAME_BYTES) return `is ${bytes} bytes long, more than ${MAX_NAME_BYTES}`;
  return undefined;
}

/**
 * Why `value` cannot be a task id / node name, or undefined when it can. `subject` names the
 * thing in the message (default: the kind, e.g. "task id").
 */
export function invalidNameReason(kind: NameKind, value: unknown, subject: string = kind): string | undefined {
  const problem = nameProblem(value);
  return problem === undefined ? undefined : `${subject} ${problem}; expected ${nameExpectation(kind)}`;
}

export function invalidTaskId(value: unknown): string | undefined {
  return invalidNameReason("task id", value);
}

export function invalidNodeName(value: unknown): string | undefined {
  return invalidNameReason("node name", value);
}

/** Throws a TypeError saying what is wrong and what is expected. */
export function assertTaskId(value: unknown): asserts value is string {
  const reason = invalidTaskId(value);
  if (reason) throw new TypeError(reason);
}

export function assertNodeName(value: unknown): asserts value is string {
  const reason = invalidNodeName(value);
  if (reason) throw new TypeError(reason);
}

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return true;
    }
    if (c >= 0xdc00 && c <= 0xdfff) return true;
  }
  return false;
}

/** The value quoted for a message, shortened: a 5 MB id must not make a 5 MB log line. */
function show(value: string): string {
  const text = JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return text;
}
