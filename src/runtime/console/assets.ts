/**
 * The console's script and styles, inlined by Bun at bundle time (see bundle.macro.ts).
 * Imported lazily by routes.ts, so a node that nobody opens the console of never pays for it,
 * and so runtimes without Bun's macros (Deno from source) fail only this import.
 */
import { consoleScript, consoleStyles } from "./bundle.macro.ts" with { type: "macro" };

export const SCRIPT: string = consoleScript();
export const STYLES: string = consoleStyles();
