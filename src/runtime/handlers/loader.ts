/**
 * The handler folder: every `.ts`, `.js` and `.mjs` file in it (not dotfiles, `*.d.ts` or
 * `*.test.*`) is one handler module. Its default export is validated here; every broken file
 * is collected, so one start-up attempt tells the operator about all of them at once.
 *
 * Accepted default exports:
 *   export default { name?, run(task, ctx), stateful?: true, errorPolicy? }   (or an instance)
 *   export default async function (task, ctx) { ... }                         (name = file name)
 * `stateful: true` makes `run` a state-machine handler (it returns a Message); the runtime wraps
 * it with the coordinator's state store and task commands.
 */
import { readdirSync, statSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { ConfigError } from "../../errors.ts";
import { withTimeout } from "../../internal/timers.ts";

/** A validated handler module, not yet bound to a coordinator. */
export interface HandlerModule {
  readonly name: string;
  /** Absolute path of the file it came from. */
  readonly file: string;
  readonly stateful: boolean;
  /** Handler.run, or StatefulRun when stateful. */
  readonly run: (...args: never[]) => unknown;
  /** Stateful only: a custom error policy (see the state machine's ErrorPolicy). */
  readonly errorPolicy?: (...args: never[]) => unknown;
}

export interface BrokenHandlerFile {
  readonly file: string;
  readonly reason: string;
}

/** Start-up stops on this: it lists every broken handler file and why. */
export class HandlerLoadError extends ConfigError {
  override name = "HandlerLoadError";
  constructor(
    readonly folder: string,
    readonly broken: readonly BrokenHandlerFile[],
  ) {
    super(
      `${broken.length} broken handler file${broken.length === 1 ? "" : "s"} in ${folder}:\n` +
        broken.map((b) => `  - ${basename(b.file)}: ${b.reason}`).join("\n"),
    );
  }
}

const HANDLER_EXTENSIONS = new Set([".ts", ".js", ".mjs"]);

/** Handler files in `folder`, sorted by name. */
export function handlerFiles(folder: string): string[] {
  return readdirSync(folder)
    .filter((f) => {
      if (f.startsWith(".")) return false;
      if (f.endsWith(".d.ts")) return false;
      if (/\.test\.[^.]+$/.test(f) || /\.spec\.[^.]+$/.test(f)) return false;
      if (!HANDLER_EXTENSIONS.has(extname(f))) return false;
      return statSync(join(folder, f)).isFile();
    })
    .sort()
    .map((f) => join(folder, f));
}

const isFunction = (what: string) =>
  z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", { error: `${what} must be a function` });

const handlerObject = z.strictObject(
  {
    name: z
      .string({ error: "name must be a string" })
      .min(1, { error: "name must not be empty" })
      .refine((n) => !n.includes("/"), { error: "name must not contain '/'" })
      .optional(),
    run: isFunction("run"),
    stateful: z.boolean({ error: "stateful must be true or false" }).optional(),
    errorPolicy: isFunction("errorPolicy").optional(),
  },
  { error: "default export must be an object with a run(task, ctx) function, or a function" },
);

/** Validate one module's default export; returns the handler or why it is not one. */
export function validateHandlerExport(file: string, mod: Record<string, unknown>): HandlerModule | string {
  if (!("default" in mod) || mod.default === undefined) {
    return "no default export; expected `export default { run(task, ctx) { ... } }` or `export default async function (task, ctx) { ... }`";
  }
  const exported = mod.default;
  const fileName = basename(file, extname(file));
  if (typeof exported === "function") {
    return { name: fileName, file, stateful: false, run: exported as (...args: never[]) => unknown };
  }
  if (!exported || typeof exported !== "object") {
    return `default export is ${exported === null ? "null" : typeof exported}; expected an object with run(task, ctx), or a function`;
  }
  // A plain object is checked strictly (a misspelt `statefull` is an error). A class instance
  // keeps its own state in fields, so only the known fields are read from it (run may live on
  // the prototype).
  const proto = Object.getPrototypeOf(exported) as unknown;
  const plain = proto === Object.prototype || proto === null;
  const source = exported as Record<string, unknown>;
  const candidate: Record<string, unknown> = plain ? { ...source } : {};
  if (!plain)
    for (const k of ["name", "run", "stateful", "errorPolicy"]) if (source[k] !== undefined) candidate[k] = source[k];
  if (source.run !== undefined) candidate.run = source.run;
  const parsed = handlerObject.safeParse(candidate);
  if (!parsed.success) {
    return parsed.error.issues
      .map((i) =>
        i.code === "unrecognized_keys"
          ? `unknown field${i.keys.length > 1 ? "s" : ""} ${i.keys.map((k) => `"${k}"`).join(", ")} (allowed: name, run, stateful, errorPolicy)`
          : i.message,
      )
      .join("; ");
  }
  const h = parsed.data;
  if (h.errorPolicy && !h.stateful)
    return "errorPolicy only applies to stateful handlers; add `stateful: true` or remove it";
  // Bound, so a run() that uses `this` (other fields of its object, a class instance) keeps working.
  const out: HandlerModule = {
    name: h.name ?? fileName,
    file,
    stateful: h.stateful === true,
    run: h.run.bind(exported),
  };
  return h.errorPolicy ? { ...out, errorPolicy: h.errorPolicy } : out;
}

/** How a module is imported; tests may substitute it. */
export type ImportModule = (file: string) => Promise<Record<string, unknown>>;

const defaultImport: ImportModule = (file) => import(pathToFileURL(file).href) as Promise<Record<string, unknown>>;

/**
 * Load and validate every handler file in `folder`. Throws HandlerLoadError listing every
 * broken file (syntax error, failed import, wrong shape, duplicate name).
 */
export interface LoadHandlerOptions {
  /** How long one module may take to load, top-level await included (ms, default 10 s). */
  timeout?: number;
}

export const DEFAULT_HANDLER_LOAD_TIMEOUT = 10_000;

export async function loadHandlerModules(
  folder: string,
  importModule: ImportModule = defaultImport,
  opts: LoadHandlerOptions = {},
): Promise<HandlerModule[]> {
  const timeout = opts.timeout ?? DEFAULT_HANDLER_LOAD_TIMEOUT;
  let files: string[];
  try {
    if (!statSync(folder).isDirectory()) throw new Error("not a folder");
    files = handlerFiles(folder);
  } catch (err) {
    throw new ConfigError(
      `handler folder ${folder} cannot be read (${(err as Error).message}); set handlers / METAFORA_HANDLERS / --handlers to a folder of handler files`,
    );
  }
  const broken: BrokenHandlerFile[] = [];
  const loaded: HandlerModule[] = [];
  for (const file of files) {
    let mod: Record<string, unknown>;
    try {
      mod = await withLoadTimeout(importModule(file), timeout);
    } catch (err) {
      if (err instanceof LoadTimeout) {
        broken.push({
          file,
          reason: `did not finish loading within ${timeout} ms (a top-level await that never settles?); fix the module, or raise handler_load_timeout (METAFORA_HANDLER_LOAD_TIMEOUT, --handler-load-timeout)`,
        });
        continue;
      }
      broken.push({ file, reason: describeImportError(err) });
      continue;
    }
    const result = validateHandlerExport(file, mod);
    if (typeof result === "string") broken.push({ file, reason: result });
    else loaded.push(result);
  }
  const byName = new Map<string, HandlerModule[]>();
  for (const h of loaded) byName.set(h.name, [...(byName.get(h.name) ?? []), h]);
  for (const [name, list] of byName) {
    if (list.length < 2) continue;
    for (const h of list) {
      const others = list.filter((o) => o !== h).map((o) => basename(o.file));
      broken.push({
        file: h.file,
        reason: `duplicate handler name "${name}" (also in ${others.join(", ")}); each handler needs its own name`,
      });
    }
  }
  if (broken.length > 0) {
    broken.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
    throw new HandlerLoadError(folder, broken);
  }
  return loaded;
}

class LoadTimeout extends Error {}

/** The import, or a LoadTimeout after `ms`; the timer never keeps the process alive. */
function withLoadTimeout<T>(load: Promise<T>, ms: number): Promise<T> {
  // A module that settles after the timeout must not surface as an unhandled rejection.
  load.catch(() => {});
  return withTimeout(load, ms, () => new LoadTimeout());
}

/** One line saying why an import failed: syntax errors with line:column, others by message. */
export function describeImportError(err: unknown): string {
  const errors = err instanceof AggregateError ? err.errors : [err];
  return errors
    .map((e) => {
      if (!e || typeof e !== "object") return `failed to load: ${String(e)}`;
      const { name, message, position } = e as {
        name?: string;
        message?: string;
        position?: { line?: number; column?: number } | null;
      };
      const at =
        position && typeof position.line === "number" ? ` (line ${position.line}, column ${position.column ?? 0})` : "";
      if (name === "BuildMessage" || name === "SyntaxError") return `syntax error: ${message}${at}`;
      if (name === "ResolveMessage") return `cannot resolve an import: ${message}`;
      return `failed to load: ${name && name !== "Error" ? `${name}: ` : ""}${message ?? String(e)}${at}`;
    })
    .join("; ");
}
